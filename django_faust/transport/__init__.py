"""Transports: how the engine talks to a broker.

`by_url` picks the driver from the URL scheme of the ``BROKER`` setting.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mode.utils.imports import symbol_by_name

from ..exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from .base import Transport

__all__ = ["DRIVERS", "by_url"]

#: URL scheme -> driver class (a dotted path, imported on first use).
DRIVERS: dict[str, str] = {
    "memory": "django_faust.transport.memory:MemoryTransport",
    "kafka": "django_faust.transport.kafka:AIOKafkaTransport",
    "aiokafka": "django_faust.transport.kafka:AIOKafkaTransport",
}


def by_url(url: str) -> type[Transport]:
    """The transport class for a broker URL such as ``kafka://host:9092``."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    try:
        path = DRIVERS[scheme]
    except KeyError:
        raise ImproperlyConfigured(
            f'FAUST["BROKER"]: unknown transport {scheme!r} in {url!r}; '
            f"use one of: {', '.join(sorted(DRIVERS))}."
        ) from None
    return symbol_by_name(path)  # type: ignore[no-any-return]
