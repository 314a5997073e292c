"""Who gets which partition: the assignment both transports use.

Pure functions, so the Kafka group protocol (`transport/aiokafka.py`) and the
memory broker (`transport/memory.py`) assign alike and can be tested without
a broker.

- `assign_partitions` spreads *active* partitions, keeping partition *p* of
  co-partitioned topics (a table's changelog and its source) on one member.
- `assign_standbys` gives each changelog partition up to ``replicas`` other
  members that keep a warm copy of the table partition, so a failover
  recovers only the last few changes.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping

logger = logging.getLogger(__name__)

__all__ = ["assign_partitions", "assign_standbys"]


def assign_partitions(
    subscriptions: Mapping[str, Collection[str]],
    partition_counts: Mapping[str, int],
    copartitioned: Iterable[Collection[str]] | None = None,
) -> dict[str, dict[str, list[int]]]:
    """Spread partitions over members, keeping co-partitioned topics together.

    ``subscriptions`` maps member id -> topics it reads; ``partition_counts``
    topic -> number of partitions. Topics are assigned in *groups*: partition
    *p* of every topic in a group goes to the same member, which is what a
    table needs (its changelog partition lives with its source partition).
    Without ``copartitioned``, topics with the same partition count (read by
    the same members) form a group; with it, only the groups it lists do, and
    every other topic is assigned on its own.

    Each (group, partition) goes to the least loaded member that reads the
    group's topics, ties broken by member id, so partitions go round-robin
    and the result depends only on the input. Returns member id -> topic ->
    sorted partitions (every member has an entry, maybe empty).
    """
    members = sorted(subscriptions)
    readers: dict[str, tuple[str, ...]] = {}
    for topic in sorted({t for topics in subscriptions.values() for t in topics}):
        if partition_counts.get(topic, 0) > 0:
            readers[topic] = tuple(m for m in members if topic in subscriptions[m])
    groups = _topic_groups(readers, partition_counts, copartitioned)

    assignment: dict[str, dict[str, list[int]]] = {m: {} for m in members}
    load = dict.fromkeys(members, 0)
    rank = {member: i for i, member in enumerate(members)}
    for group in groups:
        eligible = readers[group[0]]
        for partition in range(partition_counts[group[0]]):
            owner = min(eligible, key=lambda m: (load[m], rank[m]))
            load[owner] += len(group)
            for topic in group:
                assignment[owner].setdefault(topic, []).append(partition)
    return assignment


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
) -> dict[str, dict[str, list[int]]]:
    """Standby copies of changelog partitions, on members that don't own them.

    ``active`` is `assign_partitions`' result. Each partition of each topic
    in ``standby_topics`` gets up to ``replicas`` standby members (fewer when
    the group is smaller), never its active owner, spread to the least
    loaded first, ties broken by member id. Returns member id -> topic ->
    sorted partitions (every member has an entry, maybe empty).
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
    load = dict.fromkeys(members, 0)
    rank = {m: i for i, m in enumerate(members)}
    for topic, p in sorted(k for k in owner if k[0] in standby_topics):
        candidates = sorted(
            (m for m in members if m != owner[(topic, p)]),
            key=lambda m: (load[m], rank[m]),
        )
        for member in candidates[:replicas]:
            load[member] += 1
            standbys[member].setdefault(topic, []).append(p)
    return standbys
