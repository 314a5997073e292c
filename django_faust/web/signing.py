"""Signed requests between the processes of one project.

A worker asks another worker for a key (`Router.ask`); a web process
without a worker asks the workers for the admin's pages
(`~django_faust.admin_data.RemoteAdminData`) and relays their WebSockets
(`~django_faust.consumers`). The processes share the project's
``SECRET_KEY``, so each request carries an HMAC (Django's
`~django.utils.crypto.salted_hmac`, SHA-256) of its target (path and query)
and the time it was made: the receiver lets it in where the view is closed
to the public, and refuses it once `MAX_AGE` seconds old, so a request seen
on the wire cannot be replayed later.

Over HTTP the two values travel in `SIGNATURE_HEADER` and
`TIMESTAMP_HEADER`; a WebSocket handshake (no custom headers from a
browser library) carries them in its query string.
"""

from __future__ import annotations

import time

__all__ = [
    "MAX_AGE",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "headers",
    "sign",
    "verify",
]

#: Request header with the signature of a request from another process.
SIGNATURE_HEADER = "X-Faust-Signature"
#: Request header with the time (seconds since the epoch) it was signed.
TIMESTAMP_HEADER = "X-Faust-Timestamp"
#: Seconds a signed request stays valid (either way: clocks drift).
MAX_AGE = 60.0

_SALT = "django_faust.web.signing"


def sign(target: str, timestamp: str) -> str:
    """The signature of a request for ``target`` made at ``timestamp``."""
    from django.utils.crypto import salted_hmac

    return salted_hmac(_SALT, f"{timestamp}\n{target}", algorithm="sha256").hexdigest()


def headers(target: str) -> dict[str, str]:
    """The headers that sign a request for ``target``, made now."""
    timestamp = repr(time.time())
    return {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: sign(target, timestamp)}


def verify(target: str, timestamp: str | None, signature: str | None) -> bool:
    """Whether a request for ``target`` was signed by a process of this project.

    False when unsigned, forged, or older (or newer) than `MAX_AGE`.
    """
    from django.utils.crypto import constant_time_compare

    if not timestamp or not signature:
        return False
    try:
        age = abs(time.time() - float(timestamp))
    except ValueError:
        return False
    return age <= MAX_AGE and constant_time_compare(sign(target, timestamp), signature)
