"""Table storage drivers, chosen by the scheme of ``FAUST["STORE"]``.

``memory://`` keeps tables in dicts (they are rebuilt from their changelog at
every start); ``rocksdb://`` keeps them on local disk and needs the
``rocksdb`` extra, which is imported only when a RocksDB store is created.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from mode.utils.imports import symbol_by_name

from ..conf.schemes import STORES as DRIVERS
from ..exceptions import ImproperlyConfigured
from ..utils.urls import parse_url
from .base import MISSING, ChangelogRecord, Decoder, Encoder, Store
from .memory import MemoryStore
from .rocksdb import RocksDBStore

__all__ = [
    "MISSING",
    "STORES",
    "ChangelogRecord",
    "Decoder",
    "Encoder",
    "MemoryStore",
    "RocksDBStore",
    "Store",
    "by_url",
]

#: Store class by URL scheme, from the one registry of schemes
#: (`django_faust.conf.schemes`).
STORES: Mapping[str, type[Store]] = MappingProxyType(
    {scheme: symbol_by_name(driver.path) for scheme, driver in DRIVERS.items()}
)


def by_url(url: str) -> type[Store]:
    """The store class for a ``FAUST["STORE"]`` URL such as ``rocksdb://``."""
    try:
        scheme = parse_url(url).scheme
    except (TypeError, ValueError) as exc:
        raise ImproperlyConfigured(f'FAUST["STORE"] is not a valid URL: {exc}') from exc
    try:
        return STORES[scheme]
    except KeyError:
        known = ", ".join(f"{name}://" for name in STORES)
        raise ImproperlyConfigured(
            f'FAUST["STORE"] is {url!r}, but there is no table store for the '
            f"scheme {scheme!r}; use one of: {known}."
        ) from None
