"""Which offsets may be committed: per-partition ack tracking.

Every fetched batch is registered here in offset order. A batch is *done*
when each of its messages was finished by every subscriber. The committable
offset of a partition is the offset of the oldest message some subscriber
has not finished (or the end of the last done batch), so an event that is
still being processed never lets a later offset be committed past it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from ..events import Batch
from ..types import TP

__all__ = ["PartitionTracker"]


class PartitionTracker:
    """Acked and committed offsets of one assigned partition."""

    __slots__ = ("acked", "committed", "on_acked", "pending", "tp")

    def __init__(
        self,
        tp: TP,
        committed: int | None = None,
        on_acked: Callable[[int], None] | None = None,
    ) -> None:
        self.tp = tp
        #: Told how many messages each finished batch held (BROKER_COMMIT_EVERY).
        self.on_acked = on_acked
        self.pending: deque[Batch] = deque()
        #: Next offset after everything acknowledged in order (None: nothing yet).
        self.acked: int | None = committed
        #: The offset last committed to the broker.
        self.committed: int | None = committed

    def add(self, batch: Batch) -> None:
        """Track a newly fetched batch (called in offset order)."""
        batch.on_done = self.batch_done
        self.pending.append(batch)

    def batch_done(self, batch: Batch) -> None:
        pending = self.pending
        while pending and pending[0].done:
            done = pending.popleft()
            self.acked = done.next_offset
            if self.on_acked is not None:
                self.on_acked(len(done.messages))

    def committable(self) -> int | None:
        """The offset to commit now, or None when nothing new is acked.

        Within the oldest unfinished batch, everything before its first
        unfinished message counts as acknowledged too.
        """
        acked = self.acked
        if self.pending:
            head = self.pending[0]
            if head.low:
                acked = head.next_unacked_offset()
        if acked is None or (self.committed is not None and acked <= self.committed):
            return None
        return acked

    @property
    def in_flight(self) -> int:
        """Messages fetched but not yet fully processed."""
        return sum(len(b.messages) for b in self.pending)

    def revoke(self) -> None:
        """Mark everything still pending as revoked (never handed out again)."""
        for batch in self.pending:
            batch.revoked = True
            batch.on_done = None
        self.pending.clear()
