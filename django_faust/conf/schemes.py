"""URL schemes a driver exists for."""

from __future__ import annotations

__all__ = ["BROKER_SCHEMES", "STORE_SCHEMES"]

#: Broker URL schemes a transport exists for.
BROKER_SCHEMES: tuple[str, ...] = ("memory", "kafka", "aiokafka")
#: Store URL schemes a table storage driver exists for.
STORE_SCHEMES: tuple[str, ...] = ("memory", "rocksdb")
