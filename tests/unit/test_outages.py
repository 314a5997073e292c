"""Broker outages, seen from the app: one line each way, a flag, no lost sends."""

from __future__ import annotations

import logging

import pytest

from django_faust import TP
from django_faust.exceptions import DeliveryError
from django_faust.testing import make_app, running
from django_faust.worker import RepeatFilter
from tests.helpers import committed, wait_for


def test_losing_and_regaining_the_broker_logs_one_line_each_way(caplog):
    app = make_app()
    transport = app.transport
    assert app.broker_available
    with caplog.at_level(logging.INFO, logger="django_faust"):
        for _ in range(20):  # the probe fails every second of the outage
            transport.broker_state(False, "KafkaConnectionError()")
        assert not app.broker_available
        assert transport.broker_lost_at is not None
        for _ in range(5):
            transport.broker_state(True)
    assert app.broker_available
    lost = [r for r in caplog.records if "Lost the connection" in r.getMessage()]
    back = [r for r in caplog.records if "is back after" in r.getMessage()]
    assert len(lost) == 1 and len(back) == 1
    assert "KafkaConnectionError()" in lost[0].getMessage()
    assert transport.broker_lost_at is None


def test_an_app_without_a_transport_yet_counts_the_broker_as_available():
    assert make_app().broker_available


def _record(name: str, msg: str, created: float, level: int = logging.ERROR):
    record = logging.LogRecord(name, level, __file__, 1, msg, ("node-1",), None)
    record.created = created
    return record


def test_the_repeat_filter_lets_one_aiokafka_message_of_a_kind_through_per_period():
    flt = RepeatFilter(period=60)
    storm = [_record("aiokafka.conn", "Unable connect to %s", t) for t in range(50)]
    passed = [r for r in storm if flt.filter(r)]
    assert len(passed) == 1
    # Another kind, and our own lines, are not held back.
    assert flt.filter(_record("aiokafka.cluster", "Metadata for %s failed", 3))
    assert all(
        flt.filter(_record("django_faust.x", "Commit failed", t)) for t in (1, 2)
    )
    assert flt.filter(_record("aiokafka.conn", "Connected to %s", 4, logging.INFO))
    # After the period, the next one passes and says how many were held.
    later = _record("aiokafka.conn", "Unable connect to %s", 61)
    assert flt.filter(later)
    assert "(and 49 more like it, not shown)" in later.getMessage()


async def test_no_offset_is_committed_past_a_send_the_broker_never_took(caplog):
    app = make_app()
    topic = app.topic("orders", value_type=int, partitions=1)
    done = []

    @app.agent(topic)
    async def orders(stream):
        async for n in stream:
            done.append(n)

    async with running(app):
        await topic.send(value=1)
        await wait_for(lambda: done == [1])
        await app.commit(None)
        assert committed(app)[TP("orders", 0)] == 1
        await topic.send(value=2)
        await wait_for(lambda: done == [1, 2])
        # As the Kafka producer records a batch that outlived the outage.
        app.producer.delivery_failure = TimeoutError("batch expired")
        with pytest.raises(DeliveryError, match="no offset is committed past it"):
            await app.commit(None)
        assert app.crashed
        assert isinstance(app.crash_reason, DeliveryError)
    # Not even the final commit of the stop passes it.
    assert committed(app)[TP("orders", 0)] == 1
    assert "batch expired" in caplog.text
