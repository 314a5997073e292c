"""The one registry of URL schemes: which driver serves each BROKER and STORE.

Settings validation, the system checks, `django_faust.transport.by_url` and
`django_faust.stores.by_url` all read these tables, so a new driver is added
here once.  Drivers are named by import path and imported on first use, so
reading the registry imports neither aiokafka nor rocksdict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = ["BROKER_SCHEMES", "STORES", "STORE_SCHEMES", "TRANSPORTS", "Driver"]


@dataclass(frozen=True)
class Driver:
    """Where the driver of one URL scheme lives, and what it needs."""

    #: ``"package.module:Class"``, imported when the driver is first used.
    path: str
    #: A module that must be importable for the driver to work.
    requires: str | None = None
    #: The django-faust extra that installs ``requires``.
    extra: str | None = None
    #: Whether the scheme reaches a broker cluster (where topic replication
    #: matters), rather than one process's memory.
    cluster: bool = False


_KAFKA = Driver("django_faust.transport.kafka:AIOKafkaTransport", cluster=True)

#: Broker URL scheme -> its transport.
TRANSPORTS: Mapping[str, Driver] = MappingProxyType(
    {
        "memory": Driver("django_faust.transport.memory:MemoryTransport"),
        "kafka": _KAFKA,
        "aiokafka": _KAFKA,
    }
)
#: Store URL scheme -> its table storage driver.
STORES: Mapping[str, Driver] = MappingProxyType(
    {
        "memory": Driver("django_faust.stores.memory:MemoryStore"),
        "rocksdb": Driver(
            "django_faust.stores.rocksdb:RocksDBStore",
            requires="rocksdict",
            extra="rocksdb",
        ),
    }
)

#: Broker URL schemes a transport exists for.
BROKER_SCHEMES: tuple[str, ...] = tuple(TRANSPORTS)
#: Store URL schemes a table storage driver exists for.
STORE_SCHEMES: tuple[str, ...] = tuple(STORES)
