"""The conductor: routes fetched batches to the subscriptions that read them.

It also owns the set of topic names the consumer must subscribe to: a
subscription added after the consumer started (``group_by`` inside a running
agent, say) changes the consumer's subscription in the background.

Like the consumer, it does not reach into the app: the App gives it a way
to find the consumer (which is built later, and again after a reconfigure).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import TYPE_CHECKING, Callable, Iterable

from mode import Service

from ..channels import Subscription
from ..events import Batch
from ..types import TP

if TYPE_CHECKING:
    from .base import Consumer

__all__ = ["Conductor"]

logger = logging.getLogger(__name__)


class Conductor(Service):
    """Topic name -> subscriptions, and delivery of batches to them."""

    mundane_level = "debug"

    def __init__(self, consumer: Callable[[], Consumer | None]) -> None:
        #: The app's consumer, if it was built (None in a client-only app).
        self.consumer = consumer
        self._subscriptions: dict[str, list[Subscription]] = defaultdict(list)
        self._changed = asyncio.Event()
        self._paused: dict[Subscription, set[TP]] = {}
        #: Topics in the group's subscription that no stream reads (table
        #: changelogs): subscribed for assignment, paused in the consumer.
        self.passive: set[str] = set()
        super().__init__()

    # -- subscriptions ---------------------------------------------------------

    def add(self, sub: Subscription) -> None:
        for name in sub.topic_names:
            self._subscriptions[name].append(sub)
        sub.on_drained = self._on_drained
        self._changed.set()

    def discard(self, sub: Subscription) -> None:
        for name in sub.topic_names:
            subs = self._subscriptions.get(name)
            if subs and sub in subs:
                subs.remove(sub)
                if not subs:
                    del self._subscriptions[name]
        self._paused.pop(sub, None)
        self._changed.set()

    def add_passive(self, topic: str) -> None:
        """Subscribe to a topic for its assignment only (never delivered)."""
        self.passive.add(topic)
        self._changed.set()

    def topic_names(self) -> set[str]:
        """Every topic the consumer group must subscribe to."""
        active = {name for name, subs in self._subscriptions.items() if subs}
        return active | self.passive

    def subscriptions_for(self, topic: str) -> list[Subscription]:
        return list(self._subscriptions.get(topic, ()))

    def __contains__(self, topic: object) -> bool:
        return topic in self._subscriptions

    @Service.task
    async def _update_consumer_subscription(self) -> None:
        """Keep the consumer subscribed to exactly the topics streams read."""
        while not self.should_stop:
            await self._changed.wait()
            self._changed.clear()
            consumer = self.consumer()
            if consumer is not None and consumer.started and not consumer.should_stop:
                await consumer.subscribe(self.topic_names())

    # -- delivery ----------------------------------------------------------------

    def deliver(self, batch: Batch) -> None:
        """Hand a fetched batch to every subscription of its topic.

        A batch nobody reads is done at once, so its offsets can be
        committed. A subscription that becomes full pauses the partition
        until it drains.
        """
        tp = batch.tp
        assert tp is not None
        subs = self._subscriptions.get(tp.topic)
        batch.retain(len(subs) if subs else 0)
        if not subs:
            return
        for sub in subs:
            sub.put_nowait(batch)
            if sub.full():
                self._pause(sub, tp)

    def _pause(self, sub: Subscription, tp: TP) -> None:
        paused = self._paused.setdefault(sub, set())
        if tp not in paused:
            paused.add(tp)
            consumer = self.consumer()
            if consumer is not None:
                consumer.pause(tp)

    def _on_drained(self, sub: Subscription, tps: Iterable[TP] | None = None) -> None:
        """Resume what was paused for ``sub`` (only ``tps`` of it, if given)."""
        paused = self._paused.get(sub)
        if not paused:
            return
        if tps is None:
            del self._paused[sub]
        else:
            paused, rest = paused & set(tps), paused - set(tps)
            if rest:
                self._paused[sub] = rest
            else:
                del self._paused[sub]
        consumer = self.consumer()
        if consumer is None:
            return
        still_paused = set()
        for tps in self._paused.values():
            still_paused |= tps
        for tp in paused - still_paused:
            consumer.resume(tp)

    def revoke(self, tps: Iterable[TP]) -> int:
        """Drop buffered batches of revoked partitions from every subscription."""
        tps = set(tps)
        dropped = 0
        seen: set[int] = set()
        for subs in self._subscriptions.values():
            for sub in subs:
                if id(sub) not in seen:
                    seen.add(id(sub))
                    dropped += sub.drop(tps)
        for paused in self._paused.values():
            paused -= tps
        return dropped
