"""The ``kafka://`` transport, on aiokafka.

The driver only translates: the engine's primitives (fetch many, commit,
subscribe, pause, send, create a topic) become aiokafka calls, and
aiokafka's rebalance callbacks become the engine's. What to commit and when
is decided in `..base.Consumer`, for every driver alike.

One module a job:

* `.config`: bootstrap servers and TLS/SASL options from the settings.
* `.assignor`: `PartitionAssignor`, the group's partition assignor
  (co-partitioned, sticky, standby-aware), and `GroupAssignment`, who owns
  what and at which web URL.
* `.consumer`: `AIOKafkaConsumer`, a member of the app's consumer group.
* `.producer`: `AIOKafkaProducer`, batched sends and topic creation.
* `.reader`: `AIOKafkaPartitionReader`, chosen partitions outside the group.
* `.transport`: `AIOKafkaTransport`, which builds the three.
* `.compat`: the one module that uses aiokafka beyond its documented API.

aiokafka's records pass through untouched: ``ConsumerRecord`` has the
attributes the engine reads (its ``timestamp`` is in milliseconds).
"""

from __future__ import annotations

from .assignor import GroupAssignment, PartitionAssignor
from .config import bootstrap_servers, credentials_options
from .consumer import AIOKafkaConsumer
from .producer import AIOKafkaProducer
from .reader import AIOKafkaPartitionReader
from .transport import AIOKafkaTransport

__all__ = [
    "AIOKafkaConsumer",
    "AIOKafkaPartitionReader",
    "AIOKafkaProducer",
    "AIOKafkaTransport",
    "GroupAssignment",
    "PartitionAssignor",
    "bootstrap_servers",
    "credentials_options",
]
