"""``isolated_partitions=True``: one actor per assigned partition, as in Faust.

The agent registers one `PartitionedSubscription` with the conductor, like
any subscription; it sorts the batches it is given by topic-partition into a
plain `Subscription` per partition, and each partition's actor reads only its
own. So an actor sees the events of exactly one partition, in order, and
state it keeps in local variables belongs to that partition.

Backpressure stays per partition: after a delivery, the subscription is
"full" when that partition's queue is, so the conductor pauses only that
partition, and a partition's queue draining resumes only that partition. A
slow partition does not hold up the others, nor does it grow without bound
when they are fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterable

from ..channels import Subscription
from ..types import TP

if TYPE_CHECKING:
    from ..channels import Channel
    from ..events import Batch

__all__ = ["PartitionedSubscription"]


class PartitionedSubscription(Subscription):
    """A subscription that keeps one queue per topic-partition.

    ``on_new_partition(tp)`` is called when a batch arrives for a partition
    that has no queue yet (normally the agent made it at assignment).
    """

    def __init__(
        self,
        channel: Channel,
        maxsize: int,
        on_new_partition: Callable[[TP], None] | None = None,
    ) -> None:
        super().__init__(channel, maxsize)
        self.partitions: dict[TP, Subscription] = {}
        self.on_new_partition = on_new_partition
        self._last: Subscription | None = None

    def for_partition(self, tp: TP) -> Subscription:
        """The queue of ``tp``, made on first use."""
        sub = self.partitions.get(tp)
        if sub is None:
            sub = self.partitions[tp] = Subscription(self.channel, self.maxsize)
            sub.on_drained = lambda _sub, _tps: self._partition_drained(tp)
        return sub

    def _partition_drained(self, tp: TP) -> None:
        if self.on_drained is not None:
            self.on_drained(self, [tp])

    # -- what the conductor calls -------------------------------------------------

    def put_nowait(self, batch: Batch) -> None:
        tp = batch.tp
        if tp is None:
            raise ValueError(
                f"{self.channel.label}: isolated partitions need batches of a "
                "topic-partition."
            )
        new = tp not in self.partitions
        sub = self.for_partition(tp)
        sub.put_nowait(batch)
        self._last = sub
        if new and self.on_new_partition is not None:
            self.on_new_partition(tp)

    async def put(self, batch: Batch) -> None:
        tp = batch.tp
        if tp is None:
            self.put_nowait(batch)  # raises the error above
        else:
            await self.for_partition(tp).put(batch)

    def full(self) -> bool:
        """Whether the partition delivered to last has a full queue."""
        return self._last is not None and self._last.full()

    def qsize(self) -> int:
        return sum(sub.qsize() for sub in self.partitions.values())

    def has_ready(self) -> bool:
        return any(sub.has_ready() for sub in self.partitions.values())

    def drop(self, tps: Iterable[TP]) -> int:
        """Forget the queues of revoked partitions (their batches are revoked)."""
        dropped = 0
        for tp in set(tps):
            sub = self.partitions.pop(tp, None)
            if sub is not None:
                dropped += sub.drop([tp])
                if sub is self._last:
                    self._last = None
        return dropped

    async def next_batch(self) -> Batch:
        raise TypeError(
            "A partitioned subscription is read one partition at a time: "
            "use for_partition(tp)."
        )

    def __repr__(self) -> str:
        return (
            f"<PartitionedSubscription {self.channel.label} "
            f"partitions={len(self.partitions)} queued={self.qsize()}>"
        )
