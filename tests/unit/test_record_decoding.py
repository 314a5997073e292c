"""The JSON shortcuts for record-typed topics give what the general path gives.

`serializers.json_records` generates, per record class, a decoder from
bytes to the record and an encoder from the record to bytes. Each test
builds the shortcut and the general function it replaces (the registry
with the shortcuts switched off) and checks, on many payloads and records,
that both give the same objects (class, attribute values with their types
and order), the same bytes, or the same errors (class, message, field and
the chain of causes).
"""

from __future__ import annotations

import json
import math
import random
from datetime import datetime
from decimal import Decimal
from enum import IntEnum
from typing import Any, Callable, Optional

import pytest

from django_faust.exceptions import EncodeError, ValueDecodeError
from django_faust.models import Record
from django_faust.serializers import json_records, register
from django_faust.serializers import registry as serializer_registry
from django_faust.serializers.codecs import JSONCodec


class Event(Record, namespace="tests.fast.Event"):
    id: int
    key: str
    amount: int
    ts: int
    pad: str
    seen: bool = False
    note: str = ""


class CheckedEvent(Event, namespace="tests.fast.CheckedEvent", validation=True):
    """`Event` with validation."""


class SpecialEvent(Event, namespace="tests.fast.SpecialEvent"):
    """A subclass, which payloads can name in their metadata."""

    extra: str = "x"


class Other(Record, namespace="tests.fast.Other"):
    id: int
    key: str


class Measure(Record, namespace="tests.fast.Measure"):
    name: Optional[str]  # noqa: UP045 - both spellings must work
    value: float
    ratio: float | None = None
    flag: bool | None = None
    count: int | None = 0


class Tagged(Measure, namespace="tests.fast.Tagged"):
    """A container field: decoded by the shortcut, encoded the general way."""

    tags: list[str] = []  # copied per instance


class CheckedMeasure(Measure, namespace="tests.fast.CheckedMeasure", validation=True):
    """`Measure` with validation."""


class Frozen(Record, namespace="tests.fast.Frozen", frozen=True):
    id: int
    key: str = ""


class Bare(Record, namespace="tests.fast.Bare", include_metadata=False):
    id: int
    key: str = ""


class Stamped(Record, namespace="tests.fast.Stamped"):
    at: datetime
    price: Decimal = Decimal(0)
    inner: Other | None = None


CALLS: list[Any] = []


class Checked(Record, namespace="tests.fast.Checked"):
    id: int
    key: str = ""

    def __post_init__(self) -> None:
        CALLS.append(self.id)
        if self.id < 0:
            raise ValueError(f"negative id {self.id}")


class Custom(Record, namespace="tests.fast.Custom"):
    id: int

    @classmethod
    def from_data(cls, data: Any) -> Custom:  # type: ignore[override]
        return cls(id=int(data["id"]) * 10)

    def to_representation(self) -> dict[str, Any]:
        return {"custom": self.id}


class Empty(Record, namespace="tests.fast.Empty"):
    pass


class Weird(Record, namespace='tests.fast."we\\ird"{ns}\u00fc\n'):
    id: int = 0


class Level(IntEnum):
    LOW = 1


class SubStr(str):
    pass


MODELS = [
    Event,
    CheckedEvent,
    SpecialEvent,
    Other,
    Measure,
    CheckedMeasure,
    Tagged,
    Frozen,
    Bare,
    Stamped,
    Checked,
    Custom,
    Empty,
    Weird,
]


@pytest.fixture
def general(monkeypatch: pytest.MonkeyPatch) -> Callable[[str, type], Any]:
    """Build the general decoder or encoder of a type, without shortcuts."""

    def build(kind: str, model: type) -> Any:
        with monkeypatch.context() as patch:
            patch.setattr(json_records, "record_decoder", lambda *args: None)
            patch.setattr(json_records, "record_encoder", lambda *args: None)
            return serializer_registry._BUILDERS[kind](model, "json")

    return build


def shortcut(kind: str, model: type) -> Any:
    return serializer_registry._BUILDERS[kind](model, "json")


def snapshot(obj: Any) -> Any:
    """What makes two decoded values the same: class, and fields with types."""
    if isinstance(obj, Record):
        return (
            type(obj),
            [(name, snapshot(value)) for name, value in vars(obj).items()],
        )
    if isinstance(obj, float) and math.isnan(obj):
        return (float, "nan")
    if isinstance(obj, list):
        return (list, [snapshot(item) for item in obj])
    if isinstance(obj, dict):
        return (dict, [(key, snapshot(value)) for key, value in obj.items()])
    return (type(obj), obj)


def error_chain(exc: BaseException) -> list[Any]:
    chain = []
    seen: BaseException | None = exc
    while seen is not None:
        chain.append(
            (
                type(seen),
                str(seen),
                getattr(seen, "field", None),
                seen.__suppress_context__,
            )
        )
        seen = seen.__cause__
    return chain


def outcome(function: Callable[[Any], Any], arg: Any) -> Any:
    try:
        return ("ok", snapshot(function(arg)))
    except Exception as exc:
        return ("error", error_chain(exc))


# -- decoding ----------------------------------------------------------------

EVENT = {"id": 1, "key": "k0001", "amount": 5, "ts": 1700000000, "pad": "x" * 32}

PAYLOADS: list[Any] = [
    json.dumps(EVENT).encode(),
    json.dumps(EVENT, separators=(",", ":")).encode(),
    json.dumps({**EVENT, "seen": True, "note": "n"}).encode(),
    json.dumps({**EVENT, "unknown": [1, 2]}).encode(),
    json.dumps({**EVENT, "__faust": {"ns": "tests.fast.Event"}}).encode(),
    json.dumps({**EVENT, "__faust": {"ns": "tests.fast.CheckedEvent"}}).encode(),
    json.dumps({**EVENT, "__faust": {"ns": "tests.fast.SpecialEvent"}}).encode(),
    json.dumps({**EVENT, "__faust": {"ns": "tests.fast.Other"}}).encode(),
    json.dumps({**EVENT, "__faust": {"ns": "no.such.Namespace"}}).encode(),
    json.dumps({**EVENT, "__faust": None}).encode(),
    json.dumps({**EVENT, "__faust": {}}).encode(),
    json.dumps({**EVENT, "__faust": "tests.fast.Event"}).encode(),
    json.dumps({**EVENT, "__faust": ["x"]}).encode(),
    json.dumps({**EVENT, "__faust": {"ns": 3}}).encode(),
    json.dumps({"id": 1}).encode(),
    json.dumps({key: value for key, value in EVENT.items() if key != "pad"}).encode(),
    json.dumps({**EVENT, "id": "3"}).encode(),
    json.dumps({**EVENT, "id": " 3 "}).encode(),
    json.dumps({**EVENT, "id": "three"}).encode(),
    json.dumps({**EVENT, "id": True}).encode(),
    json.dumps({**EVENT, "id": 2.0}).encode(),
    json.dumps({**EVENT, "id": 2.5}).encode(),
    json.dumps({**EVENT, "id": None}).encode(),
    json.dumps({**EVENT, "id": 10**30}).encode(),
    json.dumps({**EVENT, "key": None}).encode(),
    json.dumps({**EVENT, "key": 7}).encode(),
    json.dumps({**EVENT, "key": ["a"]}).encode(),
    json.dumps({**EVENT, "key": {"a": 1}}).encode(),
    json.dumps({**EVENT, "key": '\u00fc\u20ac\U0001f600 \\ " \n'}).encode(),
    json.dumps({**EVENT, "seen": "yes"}).encode(),
    json.dumps({**EVENT, "seen": 1}).encode(),
    json.dumps({**EVENT, "seen": 2}).encode(),
    json.dumps({**EVENT, "seen": None}).encode(),
    json.dumps({**EVENT, "note": 5}).encode(),
    json.dumps({"name": "m", "value": 1.5}).encode(),
    json.dumps({"name": None, "value": 2, "ratio": 0.5, "flag": True}).encode(),
    json.dumps({"name": "m", "value": "2.5", "count": None, "tags": ["a"]}).encode(),
    json.dumps({"name": "m", "value": "x", "flag": "off"}).encode(),
    b'{"name": "m", "value": NaN, "ratio": Infinity, "count": -Infinity}',
    json.dumps({"at": "2024-01-02T03:04:05", "price": "1.5"}).encode(),
    json.dumps({"at": "nope"}).encode(),
    json.dumps({"at": "2024-01-02", "inner": {"id": 1, "key": "k"}}).encode(),
    json.dumps({"at": "2024-01-02", "inner": {"id": "x", "key": "k"}}).encode(),
    json.dumps({"id": -1}).encode(),
    json.dumps({"id": 4, "key": "k"}).encode(),
    json.dumps({}).encode(),
    b" " + json.dumps(EVENT).encode() + b"\n",
    json.dumps(EVENT).encode() + b"x",
    json.dumps(EVENT).encode() + json.dumps(EVENT).encode(),
    b"",
    b"   ",
    b"{",
    b'{"id": 1,}',
    b"\xff\xfe",
    b"null",
    b"[1, 2]",
    b"3",
    b'"text"',
    None,
    json.dumps(EVENT),
    bytearray(json.dumps(EVENT).encode()),
    memoryview(json.dumps(EVENT).encode()),
    12,
]


def random_payloads(count: int, seed: int) -> list[bytes]:
    """Payloads mixing every field name with values of every JSON type."""
    rng = random.Random(seed)
    names = [
        "id",
        "key",
        "amount",
        "ts",
        "pad",
        "seen",
        "note",
        "name",
        "value",
        "ratio",
        "flag",
        "count",
        "tags",
        "extra",
        "at",
        "price",
        "__faust",
    ]
    values: list[Any] = [
        0,
        1,
        -7,
        2**63,
        1.5,
        -0.0,
        1e300,
        "",
        "s",
        "12",
        "true",
        "2024-05-06T07:08:09",
        "1.25",
        "\u00e9\u0000",
        True,
        False,
        None,
        [],
        ["a", 1],
        {},
        {"ns": "tests.fast.Event"},
        {"ns": "tests.fast.Measure"},
        {"id": 1, "key": "k"},
    ]
    payloads = []
    for _ in range(count):
        obj = {name: rng.choice(values) for name in names if rng.random() < 0.7}
        payloads.append(json.dumps(obj).encode())
    return payloads


@pytest.mark.parametrize("model", MODELS, ids=lambda model: model.__name__)
def test_decoding_gives_what_the_general_path_gives(
    model: type, general: Callable[[str, type], Any]
) -> None:
    fast = shortcut("value_decoder", model)
    slow = general("value_decoder", model)
    for payload in [*PAYLOADS, *random_payloads(400, seed=len(model.__qualname__))]:
        CALLS.clear()
        expected = outcome(slow, payload)
        calls_then = list(CALLS)
        CALLS.clear()
        assert outcome(fast, payload) == expected, payload
        calls_now = list(CALLS)
        assert calls_now == calls_then, payload  # __post_init__ as often


def test_plain_records_get_the_shortcuts() -> None:
    for model in (Event, CheckedEvent, Measure, Frozen, Bare, Checked, Weird):
        assert shortcut("value_decoder", model).__name__ == "decode_json"
        assert shortcut("value_encoder", model).__name__ == "encode_json"


def test_no_shortcut_where_the_class_decides_itself() -> None:
    # A class defining from_data / to_representation keeps them.
    assert shortcut("value_decoder", Custom).__name__ != "decode_json"
    assert shortcut("value_encoder", Custom).__name__ != "encode_json"
    assert shortcut("value_decoder", Custom)(b'{"id": 2}') == Custom(id=20)
    assert shortcut("value_encoder", Custom)(Custom(id=2)) == b'{"custom":2}'
    # Fields the encoder does not write itself: no direct encoder.
    for model in (Stamped, Tagged):
        assert shortcut("value_encoder", model).__name__ != "encode_json"
        assert shortcut("value_decoder", model).__name__ == "decode_json"


def test_no_shortcut_for_another_codec(monkeypatch: pytest.MonkeyPatch) -> None:
    class LoudJSON(JSONCodec):
        """A JSON codec of the project's own: its behaviour is its own."""

    monkeypatch.setattr(serializer_registry.codecs, "_registry", {})
    register("json", LoudJSON())
    assert shortcut("value_decoder", Event).__name__ != "decode_json"
    assert shortcut("value_encoder", Event).__name__ != "encode_json"


def test_decoding_errors_name_the_field() -> None:
    decode = serializer_registry.value_decoder(CheckedEvent, "json")
    with pytest.raises(ValueDecodeError) as info:
        decode(json.dumps({**EVENT, "amount": "lots"}).encode())
    assert info.value.field == "amount"
    assert "CheckedEvent.amount: expected int" in str(info.value)
    with pytest.raises(ValueDecodeError) as info:
        decode(json.dumps({"id": 1}).encode())
    assert info.value.field == "key"
    assert "missing required field 'key'" in str(info.value)


def test_a_subclass_named_by_the_payload_is_built() -> None:
    decode = serializer_registry.value_decoder(Event, "json")
    payload = {**EVENT, "extra": "e", "__faust": {"ns": "tests.fast.SpecialEvent"}}
    value = decode(json.dumps(payload).encode())
    assert type(value) is SpecialEvent
    assert value.extra == "e"


def test_defaults_are_fresh_per_decoded_record() -> None:
    decode = serializer_registry.value_decoder(Tagged, "json")
    first = decode(b'{"name": "a", "value": 1}')
    second = decode(b'{"name": "b", "value": 2}')
    first.tags.append("t")
    assert second.tags == []


# -- encoding ----------------------------------------------------------------


def records() -> list[Any]:
    """Records holding usual and unusual values, and things that are not."""
    plain = Event(id=1, key="k", amount=2, ts=3, pad="x")
    made: list[Any] = [
        plain,
        Event(id=-5, key="", amount=0, ts=10**40, pad="p", seen=True, note="n"),
        Event(id=1, key='q"uo\\te\n\t\x00\x1f', amount=2, ts=3, pad="\u2028"),
        Event(id=1, key="\u00fc\u20ac\U0001f600", amount=2, ts=3, pad="x"),
        Event(id=1, key="\ud800", amount=2, ts=3, pad="x"),  # not encodable
        Event(id=True, key="k", amount=2, ts=3, pad="x"),
        Event(id=1.5, key="k", amount=2, ts=3, pad="x"),
        Event(id=1, key=None, amount=2, ts=3, pad="x"),
        Event(id=1, key=SubStr("s"), amount=2, ts=3, pad="x"),
        Event(id=Level.LOW, key="k", amount=2, ts=3, pad="x"),
        Event(id=1, key="k", amount=2, ts=3, pad="x", seen=1),
        Event(id=1, key="k", amount=2, ts=3, pad="x", note=["a", {"b": None}]),
        Event(id=1, key="k", amount=2, ts=3, pad=object()),
        Event(id=10**5000, key="k", amount=2, ts=3, pad="x"),
        CheckedEvent(id=1, key="k", amount=2, ts=3, pad="x"),
        SpecialEvent(id=1, key="k", amount=2, ts=3, pad="x"),
        Other(id=1, key="k"),
        Measure(name="m", value=1.5),
        Measure(name=None, value=2, ratio=None, flag=None, count=None),
        Measure(name="m", value=0.1, ratio=-0.0, flag=True, count=7),
        Measure(name="m", value=1e300, ratio=5e-324, flag=False),
        Measure(name="m", value=math.nan),
        Measure(name="m", value=math.inf, ratio=-math.inf),
        Measure(name="m", value=True),
        Measure(name="m", value=Decimal("1.5")),
        Tagged(name="m", value=1, tags=["a", "b"]),
        CheckedMeasure(name="m", value=3),
        Frozen(id=1, key="k"),
        Bare(id=1, key="k"),
        Bare(id=1, key=7),
        Checked(id=3),
        Weird(id=3),
        Empty(),
        Custom(id=4),
        Stamped(at=datetime(2024, 1, 2), inner=Other(id=1, key="k")),
        {"id": 1, "key": "k"},
        b"already bytes",
        "text",
        None,
        7,
    ]
    missing = Event(id=1, key="k", amount=2, ts=3, pad="x")
    del missing.__dict__["note"]
    made.append(missing)
    return made


ENCODED_MODELS = [
    Event,
    CheckedEvent,
    Other,
    Measure,
    CheckedMeasure,
    Frozen,
    Bare,
    Checked,
    Weird,
    Empty,
]


@pytest.mark.parametrize("model", ENCODED_MODELS, ids=lambda model: model.__name__)
def test_encoding_gives_what_the_general_path_gives(
    model: type, general: Callable[[str, type], Any]
) -> None:
    fast = shortcut("value_encoder", model)
    slow = general("value_encoder", model)
    assert fast.__name__ == "encode_json"
    for obj in records():
        assert outcome(fast, obj) == outcome(slow, obj), obj


def test_encoding_round_trips_through_the_decoder() -> None:
    encode = serializer_registry.value_encoder(Measure, "json")
    decode = serializer_registry.value_decoder(Measure, "json")
    value = Measure(name="\u00e9", value=0.25, ratio=None, flag=True, count=None)
    data = encode(value)
    assert data == (
        b'{"name":"\xc3\xa9","value":0.25,"ratio":null,"flag":true,"count":null,'
        b'"__faust":{"ns":"tests.fast.Measure"}}'
    )
    assert decode(data) == value


def test_unencodable_values_raise_the_general_error() -> None:
    encode = serializer_registry.value_encoder(Event, "json")
    with pytest.raises(EncodeError, match="Cannot encode value"):
        encode(Event(id=1, key="\ud800", amount=2, ts=3, pad="x"))
    with pytest.raises(EncodeError, match="not JSON serializable"):
        encode(Event(id=1, key="k", amount=2, ts=3, pad=object()))
