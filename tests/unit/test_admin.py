"""The admin pages: who may see them, and what they show of a running app."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import call_command

from django_faust import admin_data
from django_faust.admin_data import LocalAdminData
from django_faust.testing import make_app, running
from tests.helpers import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

TABLES = "/admin/django_faust/streamtable/"
WORKERS = "/admin/django_faust/streamworker/"


def user(name: str, *, staff: bool, allowed: bool, superuser: bool = False) -> User:
    person = User.objects.create_user(name, password="pw", is_staff=staff)
    if superuser:
        person.is_superuser = True
        person.save()
    if allowed:
        person.user_permissions.add(
            Permission.objects.get(
                codename="view_table", content_type__app_label="django_faust"
            )
        )
    return person


@pytest.fixture
def shop(monkeypatch):
    app = make_app("shop", topic_partitions=4)
    orders = app.topic("orders", key_type=str, value_type=int)
    counts = app.Table("counts", default=int, help="Orders per account.")
    per_minute = app.Table("per-minute", default=int).tumbling(60)

    @app.agent(orders)
    async def count(stream):
        async for account, _ in stream.items():
            counts[account] += 1
            per_minute["all"] += 1

    monkeypatch.setattr(admin_data, "admin_data_factory", lambda _: LocalAdminData(app))
    return app, orders, counts


def test_the_permission_exists_after_migrate():
    call_command("migrate", verbosity=0)
    perm = Permission.objects.get(codename="view_table")
    assert perm.content_type.app_label == "django_faust"
    assert perm.content_type.model == "streamtable"


@pytest.mark.parametrize("url", [TABLES, f"{TABLES}counts/", WORKERS])
def test_anonymous_non_staff_and_staff_without_the_permission_are_refused(
    client, shop, url
):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    for name, staff in [("visitor", False), ("clerk", True)]:
        client.force_login(user(name, staff=staff, allowed=False))
        response = client.get(url)
        # Non-staff go to the login page; staff without the permission get 403.
        assert response.status_code in (302, 403), name
        if staff:
            assert response.status_code == 403
    # The permission without staff is not enough either.
    client.force_login(user("outsider", staff=False, allowed=True))
    assert client.get(url).status_code == 302


def test_the_admin_index_lists_our_pages_only_for_permitted_staff(client, shop):
    client.force_login(user("clerk", staff=True, allowed=False))
    assert TABLES not in client.get("/admin/").content.decode()
    client.force_login(user("ops", staff=True, allowed=True))
    page = client.get("/admin/").content.decode()
    assert TABLES in page and WORKERS in page


async def test_staff_with_the_permission_see_tables_keys_and_workers(
    async_client, shop
):
    from asgiref.sync import sync_to_async

    app, orders, counts = shop
    staff = await sync_to_async(user)("ops", staff=True, allowed=True)
    await async_client.aforce_login(staff)
    async with running(app):
        for account in ["alice", "bob", "alice", "albert"]:
            await orders.send(key=account, value=1)
        await wait_for(lambda: sum(counts.values()) == 4)

        tables = (await async_client.get(TABLES)).content.decode()
        assert "counts" in tables and "Orders per account." in tables
        assert "shop-counts-changelog" in tables
        assert "windowed table" in tables and "TumblingWindow(size=60)" in tables

        page = (await async_client.get(f"{TABLES}counts/")).content.decode()
        assert page.index("albert") < page.index("alice") < page.index("bob")
        assert '<td class="faust-value">2</td>' in page  # alice

        found = (await async_client.get(f"{TABLES}counts/?q=al")).content.decode()
        assert "alice" in found and "albert" in found and "bob" not in found
        exact = (
            await async_client.get(f"{TABLES}counts/?q=alice&match=exact")
        ).content.decode()
        assert "alice" in exact and "albert" not in exact

        windowed = (await async_client.get(f"{TABLES}per-minute/")).content.decode()
        assert (
            "window from" in windowed and '<td class="faust-value">4</td>' in windowed
        )

        missing = await async_client.get(f"{TABLES}nope/")
        assert missing.status_code == 404

        workers = (await async_client.get(WORKERS)).content.decode()
        assert "orders[0]" in workers


def test_pages_page_through_a_table(client, shop, monkeypatch):
    from django_faust import admin as faust_admin

    monkeypatch.setattr(faust_admin, "PAGE_SIZE", 3)
    _, _, counts = shop
    store = counts.store
    for i in range(7):
        store.set(i % 4, f"user-{i}", i)
    client.force_login(user("ops", staff=True, allowed=True))
    seen = []
    url = f"{TABLES}counts/"
    while url:
        body = client.get(url).content.decode()
        seen += [f"user-{i}" for i in range(7) if f">user-{i}<" in body]
        marker = 'id="faust-next"'
        if marker not in body:
            break
        href = body.split('<a href="')[-1].split('"')[0].replace("&amp;", "&")
        url = f"{TABLES}counts/{href}"
    assert seen == [f"user-{i}" for i in range(7)]


def test_editing_is_off_unless_enabled_and_needs_the_change_permission(client, shop):
    _ = shop
    client.force_login(user("ops", staff=True, allowed=True))
    page = client.get(f"{TABLES}counts/").content.decode()
    assert "Change a key" not in page
    response = client.post(f"{TABLES}counts/edit/", {"key": "a", "value": "1"})
    assert response.status_code == 403


async def test_edits_are_events_the_owning_worker_applies(async_client, monkeypatch):
    from asgiref.sync import sync_to_async

    from django_faust.admin_edits import enable_admin_edits

    app = make_app("editing", topic_partitions=4)
    orders = app.topic("orders", key_type=str, value_type=int)
    counts = app.Table("counts", default=int)
    enable_admin_edits(counts)

    @app.agent(orders)
    async def count(stream):
        async for account, _ in stream.items():
            counts[account] += 1

    monkeypatch.setattr(admin_data, "admin_data_factory", lambda _: LocalAdminData(app))

    def editor():
        person = user("editor", staff=True, allowed=True)
        person.user_permissions.add(Permission.objects.get(codename="change_table"))
        return person

    await async_client.aforce_login(await sync_to_async(editor)())
    async with running(app):
        await orders.send(key="alice", value=1)
        await wait_for(lambda: counts["alice"] == 1)
        page = (await async_client.get(f"{TABLES}counts/")).content.decode()
        assert "Change a key" in page
        response = await async_client.post(
            f"{TABLES}counts/edit/", {"key": "alice", "value": "41", "set": "Set"}
        )
        assert response.status_code == 302
        await wait_for(lambda: counts["alice"] == 41)
        await orders.send(key="alice", value=1)
        await wait_for(lambda: counts["alice"] == 42)
        bad = await async_client.post(
            f"{TABLES}counts/edit/", {"key": "alice", "value": "{nope", "set": "Set"}
        )
        assert bad.status_code == 302  # back to the page with the error
        await async_client.post(
            f"{TABLES}counts/edit/", {"key": "alice", "delete": "Delete"}
        )
        await wait_for(lambda: "alice" not in counts)
        # The edits went through the changelog like any write.
        await app.consumer.commit()
        from tests.helpers import log_of

        changelog = [(m.key, m.value) for m in log_of(app, "editing-counts-changelog")]
        assert (b'"alice"', None) in changelog


def test_the_migration_matches_the_models():
    # Exits non-zero if the admin's models changed without a migration.
    call_command(
        "makemigrations", "django_faust", check=True, dry_run=True, verbosity=0
    )
