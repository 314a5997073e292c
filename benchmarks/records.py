"""Per-event cost of decoding and encoding values: dicts against records.

Run by hand, with the project's virtualenv::

    .venv/bin/python benchmarks/records.py
    .venv/bin/python benchmarks/records.py --events 20000 --rounds 15

It builds the encoded events of the benchmark rows (``common.make_event``,
about 100 bytes of JSON each) and times, per event, the functions a topic
uses on them (``serializers.registry.value_decoder`` and
``value_encoder``, exactly as ``Topic.decode_value``/``encode_value`` get
them):

``decode dict``
    ``value_type=None`` with the ``json`` serializer: the ``django_faust``
    row.
``decode Record`` / ``decode Record+valid``
    ``value_type=BenchEvent`` (7 fields, as in ``rows/django_faust_row.py``),
    without and with ``validation=True``.
``encode dict`` / ``encode Record``
    W2's output: the event with ``seen`` set, as a dict and as a record.

Each figure is the median over ``--rounds`` rounds of the per-event time of
one pass over all events (a pass per case, the cases interleaved within a
round, so that a noisy neighbour hits every case alike), in microseconds,
followed by its ratio to the dict case of the same direction. Nothing is
asserted: it prints figures.

To compare two checkouts, run it once per checkout with ``PYTHONPATH``
pointing at the one to measure (the first line printed names the package
that was imported), alternating several times.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import key_sequence, make_event

import django_faust
from django_faust import Record
from django_faust.serializers import registry


class BenchEvent(Record, namespace="bench.records.Event"):
    """The benchmark rows' record: the event's five fields and two defaults."""

    id: int
    key: str
    amount: int
    ts: int
    pad: str
    seen: bool = False
    note: str = ""


class ValidatedBenchEvent(
    BenchEvent, namespace="bench.records.ValidatedEvent", validation=True
):
    """`BenchEvent` with its field types checked on decoding."""


def payloads(events: int) -> list[bytes]:
    """The encoded input events, as the producer of ``run.py`` writes them."""
    return [
        json.dumps(make_event(seq, key), separators=(",", ":")).encode()
        for seq, key in enumerate(key_sequence(events))
    ]


def cases(data: list[bytes]) -> dict[str, tuple[Callable[[Any], Any], list[Any]]]:
    """Name -> (function, inputs) for every measured case."""
    decode_dict = registry.value_decoder(None, "json")
    decode_record = registry.value_decoder(BenchEvent, "json")
    decode_valid = registry.value_decoder(ValidatedBenchEvent, "json")
    dicts = [decode_dict(item) for item in data]
    records = [decode_record(item) for item in data]
    for value in dicts:
        value["seen"] = True
    for record in records:
        record.seen = True
    return {
        "decode dict": (decode_dict, data),
        "decode Record": (decode_record, data),
        "decode Record+valid": (decode_valid, data),
        "encode dict": (registry.value_encoder(None, "json"), dicts),
        "encode Record": (registry.value_encoder(BenchEvent, "json"), records),
    }


def one_pass(function: Callable[[Any], Any], inputs: list[Any]) -> float:
    """Seconds per item of one call of ``function`` on each of ``inputs``."""
    gc.disable()
    try:
        start = time.perf_counter()
        for item in inputs:
            function(item)
        elapsed = time.perf_counter() - start
    finally:
        gc.enable()
    return elapsed / len(inputs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=11)
    args = parser.parse_args(argv)

    measured = cases(payloads(args.events))
    times: dict[str, list[float]] = {name: [] for name in measured}
    for function, inputs in measured.values():
        one_pass(function, inputs)  # warm up caches and specialisation
    for _ in range(args.rounds):
        for name, (function, inputs) in measured.items():
            times[name].append(one_pass(function, inputs))

    print(f"django_faust from {Path(django_faust.__file__).parent}")
    print(f"{args.events} events, median of {args.rounds} rounds, µs per event")
    medians = {name: statistics.median(values) * 1e6 for name, values in times.items()}
    for name, median in medians.items():
        base = medians["decode dict" if name.startswith("decode") else "encode dict"]
        spread = (max(times[name]) - min(times[name])) * 1e6
        print(
            f"  {name:<22} {median:7.3f} µs  (x{median / base:4.2f} of dict; "
            f"spread {spread:.3f})"
        )


if __name__ == "__main__":
    main()
