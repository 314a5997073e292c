"""Editing and deleting a table's keys from the admin, as events.

Off by default. ``enable_admin_edits(table)`` (in the ``tables.py`` that
declares the table) declares a topic ``<app id>-<table>-admin-edits``, keyed
like the table, and an agent that applies each edit to the table. The admin
sends an edit to that topic, from whichever process serves it; the worker
that owns the key's partition applies it while processing the event, so the
change reaches the changelog like any other, and no store is ever written
behind a worker's back. Keys are co-partitioned with a stream keyed by the
table's key; in any other case the key moves as any write would move it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from .tables.table import Table
    from .topics import Topic

__all__ = ["edits_topic", "enable_admin_edits", "send_edit"]

#: (app id, table name) -> the topic its admin edits go to.
_topics: dict[tuple[str, str], Topic] = {}


def enable_admin_edits(table: Table) -> Topic:
    """Let the admin set and delete ``table``'s keys (as events); its topic."""
    if table.window is not None:
        raise ImproperlyConfigured(
            f"Table {table.name!r} is windowed: its entries are per window and "
            "written by the agents; the admin cannot edit them."
        )
    app = table.app
    found = _topics.get((app.conf.id, table.name))
    if found is not None:
        return found
    topic = app.topic(
        f"{app.conf.id}-{table.name}-admin-edits",
        key_type=table.key_type,
        key_serializer=table.key_serializer,
        value_serializer="json",
        partitions=table.partitions,
        internal=True,
    )

    async def apply_admin_edits(edits: Any) -> None:
        async for key, edit in edits.items():
            if edit.get("op") == "delete":
                if key in table:
                    del table[key]
            else:
                table[key] = decode(table, edit["value"])

    app.agent(
        topic,
        name=f"django_faust.admin_edits.{table.name}",
        help=f"Applies the admin's edits of table {table.name!r}.",
    )(apply_admin_edits)
    _topics[(app.conf.id, table.name)] = topic
    return topic


def edits_topic(table: Table) -> Topic | None:
    """The edits topic of ``table``, or None if the admin may not edit it."""
    return _topics.get((table.app.conf.id, table.name))


def decode(table: Table, data: Any) -> Any:
    """A value typed in the admin (JSON), as the table keeps it."""
    value_type = table.value_type
    if value_type is not None and hasattr(value_type, "from_data"):
        return value_type.from_data(data)
    if data is None:
        raise ValueError(f"Table {table.name!r}: a value cannot be null.")
    return data


def send_edit(
    table: Table, key: Any, value: Any = None, *, delete: bool = False
) -> Any:
    """Send one edit (from sync code); the broker's metadata once stored."""
    topic = edits_topic(table)
    if topic is None:
        raise PermissionError(
            f"Table {table.name!r} is not editable from the admin; call "
            "django_faust.admin_edits.enable_admin_edits(table) to allow it."
        )
    if not delete:
        decode(table, value)  # refuse a bad value here, not in the agent
    edit = {"op": "delete"} if delete else {"op": "set", "value": value}
    return topic.send_sync(key=key, value=edit, timeout=10)
