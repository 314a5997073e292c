"""The TableManager: the app's registry of tables, and their service."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator, Mapping

from mode import Service

from ..exceptions import ImproperlyConfigured
from .table import Table

if TYPE_CHECKING:
    from ..app.base import App

__all__ = ["TableManager"]


class TableManager(Service, Mapping[str, Table]):
    """Tables by name. Declaring the same name twice is an error."""

    mundane_level = "debug"

    def __init__(self, app: App) -> None:
        self.app = app
        self._tables: dict[str, Table] = {}
        self._origins: dict[str, str] = {}
        super().__init__()

    def add(self, table: Table) -> Table:
        origin = _caller_module()
        known = self._origins.get(table.name)
        if known is not None and known != origin:
            raise ImproperlyConfigured(
                f"Table {table.name!r} is declared twice (in {known} and "
                f"{origin}); table names must be unique in an app."
            )
        self._tables[table.name] = table
        self._origins[table.name] = origin
        return table

    def __getitem__(self, name: str) -> Table:
        return self._tables[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tables)

    def __len__(self) -> int:
        return len(self._tables)

    @property
    def label(self) -> str:
        return f"TableManager ({len(self._tables)} tables)"


def _caller_module() -> str:
    """The module that declared a table (to tell re-imports from clashes)."""
    import sys

    frame = sys._getframe(3)
    return str(frame.f_globals.get("__name__", "?"))
