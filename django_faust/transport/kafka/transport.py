"""The ``kafka://`` transport: builds the aiokafka consumer, producer, readers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ...types import TP
from ..base import ConsumerCallbacks, Transport
from .config import bootstrap_servers, credentials_options, ms
from .consumer import AIOKafkaConsumer
from .producer import AIOKafkaProducer
from .reader import AIOKafkaPartitionReader
from .transactions import TransactionalProducer

if TYPE_CHECKING:
    from ...conf import Settings

__all__ = ["AIOKafkaTransport"]


class AIOKafkaTransport(Transport):
    """``kafka://host:port;host:port`` (also ``aiokafka://``)."""

    driver_name = "aiokafka"
    default_port = 9092

    def __init__(self, url: str, conf: Settings) -> None:
        super().__init__(url, conf)
        self.bootstrap_servers = bootstrap_servers(url)
        self._security: dict[str, Any] | None = None

    def client_options(self) -> dict[str, Any]:
        """Arguments every aiokafka client of this app takes."""
        conf = self.conf
        if self._security is None:
            # Built once: the SSL context reads certificate files.
            self._security = credentials_options(conf.broker_credentials)
        return {
            "bootstrap_servers": self.bootstrap_servers,
            "client_id": conf.broker_client_id,
            "request_timeout_ms": ms(conf.broker_request_timeout),
            **self._security,
        }

    def create_consumer(self, callbacks: ConsumerCallbacks) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(self, callbacks)

    def create_producer(self) -> AIOKafkaProducer:
        if self.conf.processing_guarantee == "exactly_once":
            # Transactional once a worker calls use_transactions().
            return TransactionalProducer(self)
        return AIOKafkaProducer(self)

    @property
    def isolation_level(self) -> str:
        """What every reader of ours reads: only committed transactions under
        exactly-once (aborted records never reach an agent or a table)."""
        if self.conf.processing_guarantee == "exactly_once":
            return "read_committed"
        return "read_uncommitted"

    def create_reader(self, offsets: Mapping[TP, int]) -> AIOKafkaPartitionReader:
        return AIOKafkaPartitionReader(self, offsets)
