"""Agent RPC: ask an agent, and get back what it yields for that request.

A request carries two headers: the reply topic of the asking process and a
correlation id. When an agent ``yield``s while processing such an event, the
value is sent to that reply topic with the correlation id. Each process reads
its own reply topic (``<app_id>-reply-<random>``) with a `ReplyConsumer` and
hands every reply to the ``ask`` waiting for it. This works from a worker and
from a client-only process (a web server) alike: neither joins the worker's
consumer group to read replies.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import TYPE_CHECKING, Any, Sequence

from mode import Service

from ..models import decode_model_payload
from ..serializers import get_codec
from ..types import TP

if TYPE_CHECKING:
    from ..app.base import App
    from ..transport.base import PartitionReader

__all__ = [
    "CORRELATION_ID",
    "REPLY_TO",
    "ReplyConsumer",
    "decode_reply",
    "encode_reply",
    "reply_target",
]

logger = logging.getLogger(__name__)

REPLY_TO = "django_faust.reply_to"
CORRELATION_ID = "django_faust.correlation_id"

#: Replies nobody reads are of no use after a day.
REPLY_RETENTION = 24 * 3600.0

_json = get_codec("json")


def reply_target(headers: Sequence[tuple[str, bytes]] | None) -> tuple[str, str] | None:
    """``(reply_topic, correlation_id)`` when the event is an RPC request."""
    if not headers:
        return None
    reply_to = correlation_id = None
    for name, value in headers:
        if name == REPLY_TO:
            reply_to = value.decode()
        elif name == CORRELATION_ID:
            correlation_id = value.decode()
    if reply_to and correlation_id:
        return reply_to, correlation_id
    return None


def encode_reply(correlation_id: str, value: Any) -> bytes:
    return _json.dumps({"correlation_id": correlation_id, "value": value})


def decode_reply(data: bytes) -> tuple[str, Any]:
    payload = _json.loads(data)
    return payload["correlation_id"], decode_model_payload(payload.get("value"))


class ReplyConsumer(Service):
    """Reads this process's reply topic and completes the waiting asks."""

    mundane_level = "debug"

    def __init__(self, app: App) -> None:
        self.app = app
        self.topic_name = f"{app.conf.id}-reply-{uuid.uuid4().hex[:16]}"
        self._waiting: dict[str, asyncio.Future[Any]] = {}
        self._reader: PartitionReader | None = None
        super().__init__()

    def expect(self, correlation_id: str) -> asyncio.Future[Any]:
        """A future for the reply with this correlation id."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[correlation_id] = fut
        fut.add_done_callback(lambda f: self._waiting.pop(correlation_id, None))
        return fut

    async def on_start(self) -> None:
        topic = self.app.topic(
            self.topic_name, partitions=1, retention=REPLY_RETENTION, internal=True
        )
        await topic.declare()
        self._reader = self.app.transport.create_reader({TP(self.topic_name, 0): 0})
        await self._reader.start()
        self.add_future(self._read())

    async def _read(self) -> None:
        reader = self._reader
        assert reader is not None
        while not self.should_stop:
            for message in await reader.getmany(timeout=1.0):
                try:
                    correlation_id, value = decode_reply(message.value)
                except Exception as exc:
                    logger.error(
                        "Unreadable reply in %s@%s: %r",
                        self.topic_name,
                        message.offset,
                        exc,
                    )
                    continue
                fut = self._waiting.get(correlation_id)
                if fut is not None and not fut.done():
                    fut.set_result(value)

    async def on_stop(self) -> None:
        for fut in list(self._waiting.values()):
            if not fut.done():
                fut.cancel()
        reader, self._reader = self._reader, None
        if reader is not None:
            await reader.stop()
