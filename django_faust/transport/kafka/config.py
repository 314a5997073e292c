"""Connection settings of every aiokafka client: servers, TLS, SASL.

Pure functions of the ``BROKER`` URL and ``BROKER_CREDENTIALS``: no client
is built here, so `manage.py check` can validate them too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiokafka.helpers import create_ssl_context

from ...exceptions import ImproperlyConfigured
from ...utils.urls import parse_url

__all__ = ["bootstrap_servers", "credentials_options", "ms"]


def bootstrap_servers(url: str) -> list[str]:
    """``kafka://k1:9092;k2`` as aiokafka's ``["k1:9092", "k2:9092"]``."""
    parsed = parse_url(url)
    servers = []
    for host, port in parsed.hosts:
        name = f"[{host}]" if ":" in host else host
        servers.append(f"{name}:{port or 9092}")
    return servers or ["localhost:9092"]


def credentials_options(credentials: Mapping[str, str] | None) -> dict[str, Any]:
    """aiokafka's security arguments for a BROKER_CREDENTIALS dict.

    TLS uses an `ssl.SSLContext` built by aiokafka's ``create_ssl_context``
    (the system's CA certificates unless CAFILE is given; CERTFILE/KEYFILE
    for client certificates). SASL passes the user name and password, which
    aiokafka uses for PLAIN and SCRAM alike.
    """
    if not credentials:
        return {"security_protocol": "PLAINTEXT"}
    protocol = credentials.get("SECURITY_PROTOCOL") or (
        "SASL_SSL" if "USERNAME" in credentials else "SSL"
    )
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = create_ssl_context(
            cafile=credentials.get("CAFILE"),
            certfile=credentials.get("CERTFILE"),
            keyfile=credentials.get("KEYFILE"),
        )
    if protocol.startswith("SASL_"):
        try:
            options["sasl_plain_username"] = credentials["USERNAME"]
            options["sasl_plain_password"] = credentials["PASSWORD"]
        except KeyError as exc:
            raise ImproperlyConfigured(
                f'FAUST["BROKER_CREDENTIALS"][{exc.args[0]!r}] is required when '
                f"SECURITY_PROTOCOL is {protocol!r}."
            ) from None
        options["sasl_mechanism"] = credentials.get("SASL_MECHANISM") or "PLAIN"
    return options


def ms(seconds: float) -> int:
    """Seconds (our settings) as milliseconds (aiokafka's arguments)."""
    return int(seconds * 1000)
