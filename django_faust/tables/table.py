"""Tables: dict-like state updated while processing a stream.

A table is written only while an agent processes an event, and only by an
agent with ``concurrency=1``: each write belongs to the event (and so the
partition) that caused it, which is what lets tables be partitioned with
their source topic and rebuilt from their changelog.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterator, MutableMapping

from ..exceptions import ImproperlyConfigured, TableWriteError
from ..streams import _current_stream

if TYPE_CHECKING:
    from ..app.base import App

__all__ = ["Table"]

_MISSING = object()


class Table(MutableMapping[Any, Any]):
    """A named, dict-like table (``app.Table("counts", default=int)``).

    With ``default``, reading a missing key inside a stream event stores and
    returns ``default()`` (like `collections.defaultdict`); outside an event
    it only returns it. Without ``default`` a missing key raises `KeyError`.
    """

    def __init__(
        self,
        app: App,
        *,
        name: str,
        default: Callable[[], Any] | None = None,
        key_type: Any = None,
        value_type: Any = None,
        partitions: int | None = None,
        help: str | None = None,
    ) -> None:
        if not name or not isinstance(name, str):
            raise ImproperlyConfigured(f"A table needs a name, got {name!r}.")
        if default is not None and not callable(default):
            raise ImproperlyConfigured(
                f"Table {name!r}: default must be callable (like int or list), "
                f"got {default!r}."
            )
        self.app = app
        self.name = name
        self.default = default
        self.key_type = key_type
        self.value_type = value_type
        self.partitions = partitions
        self.help = help or ""
        self.data: dict[Any, Any] = {}

    def __repr__(self) -> str:
        return f"<Table {self.name!r} keys={len(self.data)}>"

    # -- write guard -------------------------------------------------------------

    def _check_write(self) -> None:
        stream = _current_stream.get()
        if stream is None or stream._message is None:
            raise TableWriteError(
                f"Table {self.name!r} can only be changed while an agent processes "
                "a stream event (inside 'async for ... in stream'); each change "
                "belongs to the event that caused it."
            )
        if stream.concurrency > 1:
            raise TableWriteError(
                f"Table {self.name!r} cannot be changed by an agent with "
                f"concurrency={stream.concurrency}: events would be applied out "
                "of order. Use concurrency=1 for agents that write tables."
            )

    # -- mapping -----------------------------------------------------------------

    def __getitem__(self, key: Any) -> Any:
        value = self.data.get(key, _MISSING)
        if value is not _MISSING:
            return value
        if self.default is None:
            raise KeyError(key)
        value = self.default()
        stream = _current_stream.get()
        if stream is not None and stream._message is not None:
            self[key] = value
        return value

    def __setitem__(self, key: Any, value: Any) -> None:
        self._check_write()
        self.data[key] = value

    def __delitem__(self, key: Any) -> None:
        self._check_write()
        del self.data[key]

    def __contains__(self, key: object) -> bool:
        return key in self.data

    def __iter__(self) -> Iterator[Any]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)
