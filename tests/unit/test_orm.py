"""django_faust.orm: ORM calls from agents survive a dropped connection."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.db import ProgrammingError
from django.db.utils import ConnectionHandler

from django_faust import orm


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """A persistent (CONN_MAX_AGE=None) SQLite connection the helper looks after."""
    handler = ConnectionHandler(
        {
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": str(tmp_path / "scratch.sqlite3"),
                "CONN_MAX_AGE": None,
            }
        }
    )
    monkeypatch.setattr(orm, "connections", handler)

    def close_old_connections():  # Django's, for this handler
        for conn in handler.all(initialized_only=True):
            conn.close_if_unusable_or_obsolete()

    monkeypatch.setattr(orm, "close_old_connections", close_old_connections)
    yield handler
    handler.close_all()


def _drop(handler):
    """What a database restart does: the socket closes, Django is not told."""
    conn = handler["default"]
    conn.ensure_connection()
    conn.connection.close()


def _select_one(handler):
    with handler["default"].cursor() as cursor:
        cursor.execute("SELECT 1")
        return cursor.fetchone()[0]


@pytest.mark.django_db
async def test_database_sync_to_async_replaces_a_connection_closed_under_it(scratch):
    select_one = orm.database_sync_to_async(_select_one)
    assert await select_one(scratch) == 1
    await sync_to_async(_drop)(scratch)
    assert await select_one(scratch) == 1


@pytest.mark.django_db
async def test_plain_sync_to_async_fails_on_the_dropped_connection(scratch):
    """The control: the drop above is real."""
    await sync_to_async(_drop)(scratch)
    with pytest.raises(ProgrammingError):
        await sync_to_async(_select_one)(scratch)


@pytest.mark.django_db
def test_connections_in_an_atomic_block_are_left_alone(scratch):
    conn = scratch["default"]
    with conn.cursor() as cursor:
        cursor.execute("SELECT 1")
    conn.set_autocommit(False)
    conn.in_atomic_block = True
    try:
        conn.connection.close()
        orm.close_unusable_connections()
        assert conn.connection is not None  # not closed: the transaction would go
    finally:
        conn.in_atomic_block = False
        conn.connection = None


async def test_the_worker_closes_old_connections_between_batches_not_per_event(
    monkeypatch,
):
    from django_faust.testing import make_app, running
    from tests.helpers import wait_for

    closed = []
    monkeypatch.setattr(orm, "close_old_connections", lambda: closed.append(1))
    app = make_app()
    topic = app.topic("orders", value_type=int)
    seen = []

    @app.agent(topic)
    async def consume(stream):
        async for value in stream:
            seen.append(value)

    app.housekeeping = housekeeping = orm.CloseOldConnections()
    async with running(app):
        for i in range(500):
            await topic.send(value=i)
        await wait_for(lambda: len(seen) == 500)
        await wait_for(lambda: housekeeping.runs >= 1)
        await housekeeping.wait()
    assert housekeeping.runs == len(closed)
    # Once per fetch at most, and a fetch hands out many events.
    assert 1 <= len(closed) < 100, len(closed)
