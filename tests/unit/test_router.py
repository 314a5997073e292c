"""The router's decisions from a group assignment (no broker needed)."""

from __future__ import annotations

from django_faust import App
from django_faust.transport.kafka.assignor import GroupAssignment
from django_faust.transport.memory import partition_for_key
from django_faust.types import TP


def _app() -> App:
    # A kafka:// app that is never started: the router works from what the
    # group told it (a web process's view of the world).
    return App("router-tests", broker="kafka://127.0.0.1:9", topic_partitions=4)


def test_keys_go_where_the_changelog_encoding_hashes_them() -> None:
    app = _app()
    table = app.Table("counts", default=int)
    expected = partition_for_key(b'"acct-3"', 4)  # JSON, as the changelog
    assert app.router.partition_for(table, "acct-3") == expected
    raw = app.topic("orders", key_type=str)  # raw keys: another partition
    assert app.router.partition_for(table, "acct-3", raw) == partition_for_key(
        b"acct-3", 4
    )


def test_the_owner_and_the_partition_count_come_from_the_group() -> None:
    app = _app()
    table = app.Table("counts", default=int)
    name = table.changelog_topic_name
    app.router._remote = GroupAssignment(
        urls={"m1": "http://w1:6066/", "m2": "http://w2:6066/"},
        partitions={
            "m1": frozenset(TP(name, p) for p in range(0, 8, 2)),
            "m2": frozenset(TP(name, p) for p in range(1, 8, 2)),
        },
    )
    # The topic has 8 partitions on the broker, though 4 are declared.
    partition = partition_for_key(b'"acct-3"', 8)
    assert app.router.partition_for(table, "acct-3") == partition
    owner = "http://w1:6066/" if partition % 2 == 0 else "http://w2:6066/"
    assert app.router.owner(table, "acct-3") == owner
    route = app.router.route("counts", "acct-3")
    assert (route.url, route.local) == (owner, False)


def test_a_key_without_an_owner_is_unavailable_not_local() -> None:
    app = _app()
    table = app.Table("counts", default=int)
    assert app.router.owner(table, "acct-3") is None
    route = app.router.route(table, "acct-3")
    assert not route.local
    assert "no owner yet" in (route.unavailable or "")
