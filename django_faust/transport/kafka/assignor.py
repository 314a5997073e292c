"""The consumer group's partition assignor, and what it tells every member.

`PartitionAssignor` keeps partition *p* of topics with the same partition
count on one worker (a table's changelog partition stays with its source
partition), keeps assignments sticky and standby-aware (the decisions are
the pure functions of `~django_faust.transport.assignment`), and tells
every member which worker owns what and at which web URL
(`GroupAssignment`).
"""

from __future__ import annotations

import functools
import json
import logging
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...types import TP
from ..assignment import assign_partitions, assign_standbys, by_topic
from .compat import (
    AbstractPartitionAssignor,
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)

if TYPE_CHECKING:
    from aiokafka.cluster import ClusterMetadata

__all__ = ["USER_DATA_VERSION", "GroupAssignment", "PartitionAssignor"]

logger = logging.getLogger(__name__)

#: Version of the JSON our assignor puts in the group protocol's user data.
USER_DATA_VERSION = 1


@dataclass(frozen=True)
class GroupAssignment:
    """What the last rebalance told this member about the whole group.

    ``urls`` maps member id -> web URL, ``partitions`` member id -> the
    partitions it owns: enough for the router to send a request for a key
    to the worker that holds it, and for `is_leader`.
    """

    member_id: str | None = None
    leader_id: str | None = None
    urls: Mapping[str, str] = field(default_factory=dict)
    partitions: Mapping[str, frozenset[TP]] = field(default_factory=dict)
    #: member id -> changelog partitions it keeps a standby copy of.
    standbys: Mapping[str, frozenset[TP]] = field(default_factory=dict)

    @property
    def is_leader(self) -> bool:
        return self.member_id is not None and self.member_id == self.leader_id

    @functools.cached_property
    def owners(self) -> dict[TP, str]:
        """Partition -> the member id that owns it."""
        return {tp: m for m, tps in self.partitions.items() for tp in tps}

    def url_for(self, tp: TP) -> str | None:
        """The web URL of the worker that owns ``tp``, if known."""
        owner = self.owners.get(tp)
        return None if owner is None else self.urls.get(owner)


class PartitionAssignor(AbstractPartitionAssignor):
    """The group's assignor: co-partitioned assignment, and who is where.

    Member metadata carries, as JSON in the user data::

        {"version": 1, "url": "http://host:6066/", "token": "<random hex>",
         "owned": {topic: [p, ...]}, "standby": {topic: [p, ...]}}

    ``owned`` and ``standby`` are what the member was given at the last
    rebalance, so that the assignment can be sticky (see
    `~django_faust.transport.assignment`). The elected leader recognises its
    own member id by its token, runs `assign_partitions`, and sends every
    member in its assignment's user data::

        {"version": 1, "member": "<that member's id>", "leader": "<id>",
         "urls": {member: url}, "assignments": {member: {topic: [p, ...]}}}

    Readers accept any version >= 1 and read only the keys they know, so a
    later version may add keys; removing or changing one needs a new version.
    """

    name = "django-faust"
    version = 0  # of Kafka's consumer protocol structs, not of our JSON

    def __init__(
        self,
        url: str | None,
        copartitioned: Callable[[], Iterable[Collection[str]] | None] | None = None,
        standby: Callable[[], tuple[Collection[str], int]] | None = None,
    ) -> None:
        self.url = url
        self.copartitioned = copartitioned
        self.standby = standby
        self.token = uuid.uuid4().hex
        self.group = GroupAssignment()

    def metadata(  # type: ignore[override]
        self, topics: Iterable[str]
    ) -> ConsumerProtocolMemberMetadata:
        me = self.group.member_id or ""
        user_data = {
            "version": USER_DATA_VERSION,
            "url": self.url,
            "token": self.token,
            "owned": by_topic(self.group.partitions.get(me)),
            "standby": by_topic(self.group.standbys.get(me)),
        }
        return ConsumerProtocolMemberMetadata(
            self.version, sorted(topics), _dump(user_data)
        )

    def assign(  # type: ignore[override]
        self,
        cluster: ClusterMetadata,
        members: Mapping[str, ConsumerProtocolMemberMetadata],
    ) -> dict[str, ConsumerProtocolMemberAssignment]:
        subscriptions = {m: set(meta.subscription) for m, meta in members.items()}
        infos = {
            m: _load(meta.user_data, "member metadata") for m, meta in members.items()
        }
        counts: dict[str, int] = {}
        for topic in sorted({t for topics in subscriptions.values() for t in topics}):
            partitions = cluster.partitions_for_topic(topic)
            if partitions is None:
                logger.warning(
                    "No partition metadata for topic %r: not assigned", topic
                )
                continue
            counts[topic] = len(partitions)
        declared = self.copartitioned() if self.copartitioned is not None else None
        owned = {m: _partitions_in(info.get("owned")) for m, info in infos.items()}
        # Table data a member has: what it owned, and its standby copies.
        warm: dict[str, dict[str, list[int]]] = {}
        for m, info in infos.items():
            warm[m] = {topic: list(parts) for topic, parts in owned[m].items()}
            for topic, parts in _partitions_in(info.get("standby")).items():
                warm[m].setdefault(topic, []).extend(parts)
        table = assign_partitions(
            subscriptions, counts, declared, previous=owned, warm=warm
        )
        standby_topics, replicas = (
            self.standby() if self.standby is not None else ((), 0)
        )
        standbys = assign_standbys(table, standby_topics, replicas, warm=warm)

        leaders = [m for m in sorted(members) if infos[m].get("token") == self.token]
        leader = leaders[0] if leaders else None
        if leader is None:
            logger.warning(
                "Assigning partitions, but did not find myself among %s",
                sorted(members),
            )
        urls = {
            m: info["url"]
            for m, info in infos.items()
            if isinstance(info.get("url"), str)
        }
        shared = {
            "version": USER_DATA_VERSION,
            "leader": leader,
            "urls": urls,
            "assignments": table,
            "standbys": standbys,
        }
        Assignment = ConsumerProtocolMemberAssignment.Assignment
        return {
            member: ConsumerProtocolMemberAssignment(
                self.version,
                [
                    Assignment(topic, parts)
                    for topic, parts in sorted(table[member].items())
                ],
                _dump({**shared, "member": member}),
            )
            for member in members
        }

    def on_assignment(  # type: ignore[override]
        self, assignment: ConsumerProtocolMemberAssignment
    ) -> None:
        info = _load(assignment.user_data, "assignment")
        tables = info.get("assignments")
        partitions: dict[str, frozenset[TP]] = {}
        if isinstance(tables, dict):
            for member, topics in tables.items():
                partitions[member] = frozenset(
                    TP(topic, p) for topic, parts in topics.items() for p in parts
                )
        standbys: dict[str, frozenset[TP]] = {}
        copies = info.get("standbys")
        if isinstance(copies, dict):
            for member, topics in copies.items():
                standbys[member] = frozenset(
                    TP(topic, p) for topic, parts in topics.items() for p in parts
                )
        urls = info.get("urls")
        self.group = GroupAssignment(
            member_id=info.get("member"),
            leader_id=info.get("leader"),
            urls=dict(urls) if isinstance(urls, dict) else {},
            partitions=partitions,
            standbys=standbys,
        )


def _partitions_in(data: Any) -> dict[str, list[int]]:
    """Read back `_by_topic`'s form; anything malformed counts as nothing."""
    if not isinstance(data, dict):
        return {}
    return {
        topic: [p for p in parts if isinstance(p, int)]
        for topic, parts in data.items()
        if isinstance(topic, str) and isinstance(parts, list)
    }


def _dump(data: Mapping[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def _load(data: bytes | None, what: str) -> dict[str, Any]:
    """Decode our user data; anything unreadable counts as empty."""
    if not data:
        return {}
    try:
        info = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        logger.warning(
            "Ignoring %s user data that is not our JSON: %r", what, data[:80]
        )
        return {}
    if not isinstance(info, dict) or not isinstance(info.get("version"), int):
        logger.warning("Ignoring %s user data without a version: %r", what, data[:80])
        return {}
    if info["version"] < USER_DATA_VERSION:
        return {}
    return info
