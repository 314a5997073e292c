"""Parse the broker and store URLs used in django-faust settings.

Faust's URLs are not quite RFC 3986 URLs: a Kafka broker URL may name several
bootstrap servers in one authority (``kafka://k1:9092;k2:9092``), which
:func:`urllib.parse.urlsplit` cannot represent, and storage URLs such as
``rocksdb://data/tables`` carry a filesystem path where a host would normally
be.  This module parses both shapes with the standard library only, and fails
with a :exc:`ValueError` that says what is wrong rather than returning a
half-parsed result that breaks much later inside a driver.

It knows nothing about which schemes are *supported*; that is a policy of the
settings module.  It only knows how each shape of URL is spelled.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, unquote, urlencode

__all__ = ["DEFAULT_PORTS", "HOSTLESS_SCHEMES", "ParsedURL", "parse_url"]

#: Port used for a host written without one, by scheme.  Kafka clients expect
#: an explicit port, so filling it in here keeps drivers simple.
DEFAULT_PORTS: dict[str, int] = {"kafka": 9092, "aiokafka": 9092}

#: Schemes whose authority is part of a path rather than a list of servers.
#: ``rocksdb://data/tables`` means the relative directory ``data/tables``.
HOSTLESS_SCHEMES: frozenset[str] = frozenset({"memory", "rocksdb"})

# RFC 3986, section 3.1.
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*\Z")
# A DNS name or IPv4 address; underscores appear in container host names.
_HOSTNAME_RE = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?\Z")
_HOST_SEPARATORS = re.compile(r"[;,]")


@dataclass(frozen=True)
class ParsedURL:
    """The parts of a broker or store URL.

    ``hosts`` lists ``(host, port)`` pairs in the order written; ``port`` is
    ``None`` when the URL gave none and the scheme has no default port.  A URL
    without hosts (``kafka://``) has an empty list, leaving the choice of a
    fallback server to the driver.
    """

    scheme: str
    hosts: list[tuple[str, int | None]] = field(default_factory=list)
    path: str = ""
    query: dict[str, str] = field(default_factory=dict)

    @property
    def host(self) -> str | None:
        """The first host, or ``None``: enough for single-server schemes."""
        return self.hosts[0][0] if self.hosts else None

    @property
    def port(self) -> int | None:
        """The port of the first host, or ``None``."""
        return self.hosts[0][1] if self.hosts else None

    @property
    def netloc(self) -> str:
        """The hosts joined back as ``host:port;host:port``."""
        return ";".join(_format_host(host, port) for host, port in self.hosts)

    def __str__(self) -> str:
        if self.scheme in HOSTLESS_SCHEMES:
            location = quote(self.path)
        else:
            location = self.netloc + quote(self.path)
        query = f"?{urlencode(self.query)}" if self.query else ""
        return f"{self.scheme}://{location}{query}"


def parse_url(url: str) -> ParsedURL:
    """Split ``url`` into scheme, hosts, path and query parameters.

    Hosts may be separated by ``;`` or ``,``.  The scheme is lower-cased.
    Raises :exc:`ValueError` for anything that is not a well-formed URL, and
    :exc:`TypeError` if ``url`` is not a string.
    """
    if not isinstance(url, str):
        raise TypeError(f"URL must be a string, not {type(url).__name__}")
    text = url.strip()
    scheme, sep, rest = text.partition("://")
    if not sep:
        raise ValueError(
            f"{url!r} is not a URL: it must start with a scheme, "
            f"as in 'kafka://localhost:9092' or 'memory://'"
        )
    if not _SCHEME_RE.match(scheme):
        raise ValueError(f"{url!r} has an invalid scheme {scheme!r}")
    scheme = scheme.lower()
    if "#" in rest:
        raise ValueError(f"{url!r} has a fragment ('#...'), which is not supported")
    rest, _, query_string = rest.partition("?")
    # "?flag" is kept as {"flag": ""} rather than dropped.
    query = dict(parse_qsl(query_string, keep_blank_values=True))

    if scheme in HOSTLESS_SCHEMES:
        return ParsedURL(scheme=scheme, path=unquote(rest), query=query)

    netloc, slash, path = rest.partition("/")
    hosts = _parse_hosts(url, scheme, netloc) if netloc.strip() else []
    return ParsedURL(
        scheme=scheme, hosts=hosts, path=unquote(slash + path), query=query
    )


def _parse_hosts(url: str, scheme: str, netloc: str) -> list[tuple[str, int | None]]:
    if "@" in netloc:
        raise ValueError(
            f"{url!r} contains user information ('user@host'), which is not "
            f"supported; give credentials separately"
        )
    hosts = []
    for part in _HOST_SEPARATORS.split(netloc):
        part = part.strip()
        if not part:
            raise ValueError(f"{url!r} has an empty host in its host list")
        host, port = _split_host_port(url, part)
        if port is None:
            port = DEFAULT_PORTS.get(scheme)
        hosts.append((host, port))
    return hosts


def _split_host_port(url: str, part: str) -> tuple[str, int | None]:
    if part.startswith("["):
        # Bracketed IPv6 literal: "[::1]" or "[::1]:9092".
        end = part.find("]")
        if end == -1:
            raise ValueError(f"{url!r} has an unclosed '[' in host {part!r}")
        host, after = part[1:end], part[end + 1 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{url!r} has an invalid IPv6 address {host!r}") from None
        if after and not after.startswith(":"):
            raise ValueError(f"{url!r} has unexpected text after host {part!r}")
        port_text = after[1:] if after else None
    else:
        host, colon, port_text_ = part.partition(":")
        port_text = port_text_ if colon else None
        if not _HOSTNAME_RE.match(host):
            raise ValueError(f"{url!r} has an invalid host name {host!r}")
    if port_text is None:
        return host, None
    if not port_text.isdigit() or not port_text.isascii():
        raise ValueError(f"{url!r} has an invalid port {port_text!r} for {host!r}")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ValueError(
            f"{url!r} has port {port} for {host!r}, outside the range 1-65535"
        )
    return host, port


def _format_host(host: str, port: int | None) -> str:
    if ":" in host:
        host = f"[{host}]"
    return host if port is None else f"{host}:{port}"
