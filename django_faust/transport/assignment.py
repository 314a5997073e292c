"""Who gets which partition: the assignment both transports use.

Pure functions, so the Kafka group protocol (`transport/kafka/assignor.py`) and the
memory broker (`transport/memory.py`) assign alike and can be tested without
a broker.

- `assign_partitions` spreads *active* partitions, keeping partition *p* of
  co-partitioned topics (a table's changelog and its source) on one member.
- `assign_standbys` gives each changelog partition up to ``replicas`` other
  members that keep a warm copy of the table partition, so a failover
  recovers only the last few changes.

Both are *sticky*: given what each member held before the rebalance
(``previous`` partitions it owned, ``warm`` partitions it has table data
for: owned or standby), a partition stays with its owner, and one whose
owner left goes to a member holding a warm copy, as long as the balance
allows. Otherwise a rebalance would move table partitions between workers
that all stay, and each move costs a recovery.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping

from ..types import TP

logger = logging.getLogger(__name__)

__all__ = ["Assignment", "assign_partitions", "assign_standbys", "by_topic"]

#: member id -> topic -> partitions: what a member is given, or held before.
Assignment = Mapping[str, Mapping[str, Collection[int]]]


def by_topic(tps: Iterable[TP] | None) -> dict[str, list[int]]:
    """``{topic: [partition, ...]}`` of some partitions (an `Assignment` entry)."""
    topics: dict[str, list[int]] = {}
    for tp in sorted(tps or ()):
        topics.setdefault(tp.topic, []).append(tp.partition)
    return topics


def assign_partitions(
    subscriptions: Mapping[str, Collection[str]],
    partition_counts: Mapping[str, int],
    copartitioned: Iterable[Collection[str]] | None = None,
    *,
    previous: Assignment | None = None,
    warm: Assignment | None = None,
) -> dict[str, dict[str, list[int]]]:
    """Spread partitions over members, keeping co-partitioned topics together.

    ``subscriptions`` maps member id -> topics it reads; ``partition_counts``
    topic -> number of partitions. Topics are assigned in *groups*: partition
    *p* of every topic in a group goes to the same member, which is what a
    table needs (its changelog partition lives with its source partition).
    Without ``copartitioned``, topics with the same partition count (read by
    the same members) form a group; with it, only the groups it lists do, and
    every other topic is assigned on its own.

    How many partitions of a group each member gets is decided first: each
    (group, partition) counts for the least loaded member that reads the
    group's topics, ties broken by member id, so the load is spread evenly
    and depends only on the input. Which partitions a member gets then
    follows ``previous`` and ``warm`` (see the module doc); without them,
    partitions go round-robin. Returns member id -> topic -> sorted
    partitions (every member has an entry, maybe empty).
    """
    members = sorted(subscriptions)
    readers: dict[str, tuple[str, ...]] = {}
    for topic in sorted({t for topics in subscriptions.values() for t in topics}):
        if partition_counts.get(topic, 0) > 0:
            readers[topic] = tuple(m for m in members if topic in subscriptions[m])
    groups = _topic_groups(readers, partition_counts, copartitioned)
    held = _holders(previous)
    warmed = _holders(warm)

    assignment: dict[str, dict[str, list[int]]] = {m: {} for m in members}
    load = dict.fromkeys(members, 0)
    rank = {member: i for i, member in enumerate(members)}
    for group in groups:
        eligible = readers[group[0]]
        quota = dict.fromkeys(eligible, 0)
        for _ in range(partition_counts[group[0]]):
            owner = min(eligible, key=lambda m: (load[m], rank[m]))
            load[owner] += len(group)
            quota[owner] += 1
        chosen = _place(group, partition_counts[group[0]], quota, rank, held, warmed)
        for partition, owner in sorted(chosen.items()):
            for topic in group:
                assignment[owner].setdefault(topic, []).append(partition)
    return assignment


def _holders(held: Assignment | None) -> dict[tuple[str, int], set[str]]:
    """(topic, partition) -> the members that held it."""
    holders: dict[tuple[str, int], set[str]] = {}
    for member, topics in (held or {}).items():
        for topic, partitions in topics.items():
            for p in partitions:
                holders.setdefault((topic, p), set()).add(member)
    return holders


def _place(
    group: list[str],
    count: int,
    quota: dict[str, int],
    rank: Mapping[str, int],
    held: Mapping[tuple[str, int], set[str]],
    warm: Mapping[tuple[str, int], set[str]],
) -> dict[int, str]:
    """Partition -> member for one group, each member taking its ``quota``.

    First every partition stays with a member that held it. A partition
    whose holder left goes to a member with a warm copy; if that member is
    full, one of its partitions may move on to another member with a warm
    copy of *that* one, and so on (an augmenting path, as in bipartite
    matching), so that no table needs a full recovery while a warm copy
    could have taken it. The rest go to the members with the most quota left.
    """
    left = dict(quota)
    chosen: dict[int, str] = {}

    def members_with(
        partition: int, among: Mapping[tuple[str, int], set[str]]
    ) -> list[str]:
        found: set[str] = set()
        for topic in group:
            found |= among.get((topic, partition), set())
        return sorted(
            (m for m in found if m in left), key=lambda m: (-left[m], rank[m])
        )

    def place_warm(partition: int, seen: set[str]) -> bool:
        """Put ``partition`` on a warm member, moving others along if needed."""
        for member in members_with(partition, warm):
            if member in seen:
                continue
            seen.add(member)
            if left[member] > 0:
                left[member] -= 1
                chosen[partition] = member
                return True
            for other in [q for q, m in sorted(chosen.items()) if m == member]:
                if place_warm(other, seen):
                    chosen[partition] = member
                    return True
        return False

    for partition in range(count):
        for member in members_with(partition, held):
            if left[member] > 0:
                left[member] -= 1
                chosen[partition] = member
                break
    for partition in range(count):
        if partition not in chosen:
            place_warm(partition, set())
    for partition in range(count):
        if partition not in chosen:
            member = min(
                (m for m in left if left[m] > 0), key=lambda m: (-left[m], rank[m])
            )
            chosen[partition] = member
            left[member] -= 1
    return chosen


def _topic_groups(
    readers: Mapping[str, tuple[str, ...]],
    counts: Mapping[str, int],
    copartitioned: Iterable[Collection[str]] | None,
) -> list[list[str]]:
    """The topics to assign together, each group in a stable order."""
    buckets: dict[tuple[int, tuple[str, ...]], list[str]] = {}
    if copartitioned is None:
        for topic in readers:
            buckets.setdefault((counts[topic], readers[topic]), []).append(topic)
        return sorted(buckets.values())

    groups: list[list[str]] = []
    placed: set[str] = set()
    for declared in copartitioned:
        topics = sorted(t for t in set(declared) if t in readers and t not in placed)
        if not topics:
            continue
        sizes = {topic: counts[topic] for topic in topics}
        if len(set(sizes.values())) > 1:
            logger.error(
                "Topics %s must be co-partitioned but have different partition "
                "counts (%s): assigning each on its own, so a table and its "
                "source may end up on different workers. Recreate them with "
                "the same number of partitions.",
                ", ".join(topics),
                ", ".join(f"{t}={n}" for t, n in sizes.items()),
            )
            continue
        placed.update(topics)
        by_readers: dict[tuple[str, ...], list[str]] = {}
        for topic in topics:
            by_readers.setdefault(readers[topic], []).append(topic)
        groups.extend(by_readers.values())
    groups.extend([topic] for topic in readers if topic not in placed)
    return sorted(groups)


def assign_standbys(
    active: Mapping[str, Mapping[str, list[int]]],
    standby_topics: Collection[str],
    replicas: int,
    *,
    warm: Assignment | None = None,
) -> dict[str, dict[str, list[int]]]:
    """Standby copies of changelog partitions, on members that don't own them.

    ``active`` is `assign_partitions`' result. Each partition of each topic
    in ``standby_topics`` gets up to ``replicas`` standby members (fewer when
    the group is smaller), never its active owner: members with a ``warm``
    copy first (they are in step already), then the least loaded (active
    and standby table partitions), ties broken by member id. Returns member
    id -> topic -> sorted partitions (every member has an entry, maybe
    empty).
    """
    members = sorted(active)
    standbys: dict[str, dict[str, list[int]]] = {m: {} for m in members}
    if replicas <= 0 or len(members) < 2:
        return standbys
    owner: dict[tuple[str, int], str] = {}
    for member, topics in active.items():
        for topic, partitions in topics.items():
            for p in partitions:
                owner[(topic, p)] = member
    warmed = _holders(warm)
    # Active table partitions count as load: a member that owns few takes
    # more copies, so that whoever fails, its partitions have warm copies on
    # members with room to take them over.
    load = dict.fromkeys(members, 0)
    for topic, p in owner:
        if topic in standby_topics:
            load[owner[(topic, p)]] += 1
    rank = {m: i for i, m in enumerate(members)}
    for topic, p in sorted(k for k in owner if k[0] in standby_topics):
        has_copy = warmed.get((topic, p), set())
        candidates = sorted(
            (m for m in members if m != owner[(topic, p)]),
            key=lambda m: (m not in has_copy, load[m], rank[m]),
        )
        for member in candidates[:replicas]:
            load[member] += 1
            standbys[member].setdefault(topic, []).append(p)
    return standbys
