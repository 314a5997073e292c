"""Codecs: built-ins, composition, the name registry and entry points."""

from __future__ import annotations

import base64
import json
import pickle
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

import pytest

from django_faust.exceptions import (
    CodecError,
    DecodeError,
    DjangoFaustError,
    EncodeError,
    UnknownCodecError,
)
from django_faust.models import Record
from django_faust.serializers import Codec, codecs, dumps, get_codec, loads, register


class Reading(Record, namespace="tests.codecs.Reading"):
    sensor: str
    value: float
    at: datetime | None = None


class Reverse(Codec):
    """A user codec: reverses the bytes."""

    name = "reverse"

    def _dumps(self, obj: Any) -> bytes:
        return bytes(obj)[::-1]

    def _loads(self, data: bytes) -> Any:
        return bytes(data)[::-1]


@pytest.fixture
def isolated_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let a test register codecs without leaking them into other tests."""
    monkeypatch.setattr(codecs, "_registry", dict(codecs._registry))
    monkeypatch.setattr(codecs, "_composites", {})


# -- json --------------------------------------------------------------------


def test_json_round_trip_of_plain_structures() -> None:
    obj = {"a": [1, 2.5, "x", None, True], "b": {"c": "é"}}
    assert loads("json", dumps("json", obj)) == obj


def test_json_output_is_compact_utf8() -> None:
    assert dumps("json", {"a": [1, 2], "b": "é"}) == '{"a":[1,2],"b":"é"}'.encode()


def test_json_encodes_dates_times_as_iso_8601() -> None:
    when = datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=timezone(timedelta(hours=2)))
    data = dumps("json", [when, date(2024, 5, 6), time(7, 8, 9)])
    assert json.loads(data) == [
        "2024-05-06T07:08:09.123000+02:00",
        "2024-05-06",
        "07:08:09",
    ]


def test_json_encodes_decimal_and_uuid_as_strings() -> None:
    uid = UUID("12345678-1234-5678-1234-567812345678")
    data = dumps("json", {"price": Decimal("10.50"), "id": uid})
    assert json.loads(data) == {"price": "10.50", "id": str(uid)}


def test_json_encodes_enums_by_value() -> None:
    class Level(Enum):
        LOW = 1

    assert dumps("json", [Level.LOW]) == b"[1]"


def test_json_encodes_sets_sorted_and_tuples_as_lists() -> None:
    data = dumps("json", {"s": {"b", "c", "a"}, "f": frozenset({3, 1}), "t": (1, 2)})
    assert data == b'{"s":["a","b","c"],"f":[1,3],"t":[1,2]}'


def test_json_encodes_unsortable_sets_as_lists() -> None:
    assert sorted(json.loads(dumps("json", {1, "a"})), key=str) == [1, "a"]


def test_json_encodes_records_by_their_representation() -> None:
    reading = Reading("t1", 1.5, at=datetime(2024, 1, 1))
    data = dumps("json", {"reading": reading})
    assert json.loads(data) == {
        "reading": {
            "sensor": "t1",
            "value": 1.5,
            "at": "2024-01-01T00:00:00",
            "__faust": {"ns": "tests.codecs.Reading"},
        }
    }


def test_json_refuses_unknown_types_naming_them() -> None:
    class Opaque:
        pass

    with pytest.raises(EncodeError, match="Opaque"):
        dumps("json", {"x": Opaque()})
    with pytest.raises(EncodeError, match="bytes"):
        dumps("json", b"raw")


@pytest.mark.parametrize(
    "data",
    [b'{"a":1}', '{"a":1}', bytearray(b'{"a":1}'), memoryview(b'{"a":1}')],
    ids=["bytes", "str", "bytearray", "memoryview"],
)
def test_json_loads_accepts_bytes_like_and_str(data: Any) -> None:
    assert loads("json", data) == {"a": 1}


def test_json_loads_allows_surrounding_whitespace() -> None:
    assert loads("json", b'  {"a": 1}\n') == {"a": 1}


@pytest.mark.parametrize(
    "data",
    [b"", b"{", b"nope", b'{"a":1} trailing', b"\xff\xfe"],
    ids=["empty", "truncated", "garbage", "trailing", "not-utf8"],
)
def test_json_loads_raises_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError) as info:
        loads("json", data)
    assert isinstance(info.value, CodecError)
    assert isinstance(info.value, DjangoFaustError)
    assert info.value.__cause__ is not None


def test_json_loads_rejects_non_bytes() -> None:
    with pytest.raises(DecodeError, match="int"):
        loads("json", 12)  # type: ignore[arg-type]


# -- raw, binary, pickle ------------------------------------------------------


def test_raw_passes_bytes_and_encodes_str() -> None:
    payload = b"\x00\x01"
    assert dumps("raw", payload) is payload
    assert dumps("raw", "é") == "é".encode()
    assert loads("raw", payload) is payload
    assert loads("raw", memoryview(b"ab")) == b"ab"


def test_raw_refuses_other_objects() -> None:
    with pytest.raises(EncodeError, match="int"):
        dumps("raw", 3)


def test_binary_is_base64() -> None:
    assert dumps("binary", b"\xff\x00hi") == base64.b64encode(b"\xff\x00hi")
    assert loads("binary", base64.b64encode(b"\xff\x00hi")) == b"\xff\x00hi"


def test_binary_rejects_invalid_base64() -> None:
    with pytest.raises(DecodeError, match="base64"):
        loads("binary", b"not base64!")


def test_pickle_round_trip_including_records() -> None:
    obj = {"when": datetime(2024, 1, 1), "reading": Reading("s", 2.0), "t": (1,)}
    data = dumps("pickle", obj)
    assert pickle.loads(data) == obj
    assert loads("pickle", data) == obj


# -- composition ---------------------------------------------------------------


def test_composite_name_applies_left_then_right() -> None:
    data = dumps("json|binary", {"a": 1})
    assert data == base64.b64encode(b'{"a":1}')
    assert loads("json|binary", data) == {"a": 1}


def test_or_operator_composes_instances() -> None:
    codec = get_codec("json") | get_codec("binary")
    assert str(codec) == "json|binary"
    assert codec.dumps([1]) == base64.b64encode(b"[1]")
    assert codec.loads(base64.b64encode(b"[1]")) == [1]


def test_composites_flatten_and_chain_in_order() -> None:
    codec = (get_codec("json") | get_codec("binary")) | get_codec("binary")
    assert isinstance(codec, codecs.ComposedCodec)
    assert len(codec.chain) == 3
    assert codec.dumps("x") == base64.b64encode(base64.b64encode(b'"x"'))
    assert codec.loads(codec.dumps({"k": [1]})) == {"k": [1]}


def test_composite_names_tolerate_spaces() -> None:
    assert loads(" json | binary ", dumps("json|binary", 5)) == 5


def test_pickle_binary_composite_round_trip() -> None:
    obj = {"a": {1, 2}}
    assert loads("pickle|binary", dumps("pickle|binary", obj)) == obj


# -- registry ------------------------------------------------------------------


def test_get_codec_returns_instances_unchanged() -> None:
    codec = Reverse()
    assert get_codec(codec) is codec


def test_get_codec_rejects_other_objects() -> None:
    with pytest.raises(TypeError):
        get_codec(42)  # type: ignore[arg-type]


def test_unknown_codec_error_names_it_and_lists_known_codecs() -> None:
    with pytest.raises(UnknownCodecError) as info:
        get_codec("yaml")
    message = str(info.value)
    assert "'yaml'" in message
    for known in ("binary", "json", "pickle", "raw"):
        assert known in message
    assert isinstance(info.value, KeyError)
    assert message.startswith("Unknown codec")  # not quoted like a KeyError


def test_unknown_part_of_composite_is_named() -> None:
    with pytest.raises(UnknownCodecError, match="'yaml'"):
        get_codec("json|yaml")


@pytest.mark.usefixtures("isolated_registry")
def test_user_registered_codec_by_name_and_in_composites() -> None:
    register("reverse", Reverse())
    assert dumps("reverse", b"abc") == b"cba"
    assert loads("reverse", b"cba") == b"abc"
    assert dumps("json|reverse", [1]) == b"]1["
    assert loads("json|reverse", b"]1[") == [1]


@pytest.mark.usefixtures("isolated_registry")
def test_registering_a_name_again_replaces_the_codec() -> None:
    register("mine", Reverse())
    assert dumps("json|mine", 1) == b"1"
    register("mine", get_codec("binary"))
    assert dumps("mine", b"a") == base64.b64encode(b"a")
    assert dumps("json|mine", 1) == base64.b64encode(b"1")  # composite rebuilt


@pytest.mark.usefixtures("isolated_registry")
def test_register_validates_its_arguments() -> None:
    with pytest.raises(TypeError):
        register("bad", object())  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        register("a|b", Reverse())


# -- None: no codec --------------------------------------------------------------


def test_none_codec_means_bytes_in_bytes_out() -> None:
    assert dumps(None, b"x") == b"x"
    assert dumps(None, "é") == "é".encode()
    assert loads(None, b"x") == b"x"
    with pytest.raises(EncodeError):
        dumps(None, {"a": 1})


# -- errors of user codecs -------------------------------------------------------


class Broken(Codec):
    name = "broken"

    def _dumps(self, obj: Any) -> bytes:
        raise ValueError("cannot do it")

    def _loads(self, data: bytes) -> Any:
        raise ValueError("cannot undo it")


def test_failures_of_user_codecs_become_codec_errors() -> None:
    with pytest.raises(EncodeError, match="broken codec cannot encode int") as enc:
        Broken().dumps(1)
    assert isinstance(enc.value.__cause__, ValueError)
    with pytest.raises(DecodeError, match="cannot undo it") as dec:
        Broken().loads(b"")
    assert isinstance(dec.value.__cause__, ValueError)


# -- entry points ----------------------------------------------------------------


class FakeEntryPoint:
    def __init__(self, name: str, obj: Any) -> None:
        self.name = name
        self.obj = obj
        self.loaded = 0

    def load(self) -> Any:
        self.loaded += 1
        return self.obj


@pytest.mark.usefixtures("isolated_registry")
def test_entry_point_codecs_are_loaded_lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    instance = FakeEntryPoint("plugin-reverse", Reverse())
    cls = FakeEntryPoint("plugin-class", Reverse)
    searches: list[int] = []

    def entry_points() -> list[FakeEntryPoint]:
        searches.append(1)
        return [instance, cls]

    monkeypatch.setattr(codecs, "_entry_points", entry_points)

    assert dumps("json", 1) == b"1"
    assert searches == []  # known names never look at entry points
    assert instance.loaded == 0

    assert dumps("plugin-reverse", b"ab") == b"ba"
    assert isinstance(get_codec("plugin-class"), Reverse)  # classes instantiated
    assert dumps("json|plugin-reverse", [2]) == b"]2["
    assert instance.loaded == 1  # registered after the first lookup
    assert len(searches) == 2


@pytest.mark.usefixtures("isolated_registry")
def test_entry_point_must_provide_a_codec(monkeypatch: pytest.MonkeyPatch) -> None:
    bad = FakeEntryPoint("bad", 42)
    monkeypatch.setattr(codecs, "_entry_points", lambda: [bad])
    with pytest.raises(CodecError, match="did not provide a Codec"):
        get_codec("bad")


@pytest.mark.usefixtures("isolated_registry")
def test_unknown_name_still_fails_after_searching_entry_points(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(codecs, "_entry_points", lambda: [FakeEntryPoint("x", 1)])
    with pytest.raises(UnknownCodecError, match="'yaml'"):
        get_codec("yaml")
