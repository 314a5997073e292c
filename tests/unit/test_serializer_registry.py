"""Key/value encoders and decoders built for topics."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any

import pytest

from django_faust.exceptions import (
    DecodeError,
    EncodeError,
    KeyDecodeError,
    RecordValidationError,
    UnknownCodecError,
    ValueDecodeError,
)
from django_faust.models import METADATA_KEY, Record
from django_faust.serializers import codecs, get_codec, register
from django_faust.serializers.registry import (
    key_decoder,
    key_encoder,
    value_decoder,
    value_encoder,
)


class Order(Record, namespace="tests.registry.Order"):
    account: str
    amount: int = 0


class Secret(Record, namespace="tests.registry.Secret", serializer="json|binary"):
    token: str


class Animal(Record, abstract=True):
    name: str


class Dog(Animal, namespace="tests.registry.Dog"):
    good: bool = True


class Cat(Animal, namespace="tests.registry.Cat"):
    lives: int = 9


class Money:
    """A plain class a topic can use as its type: built from the decoded JSON."""

    def __init__(self, amount: Any) -> None:
        self.amount = Decimal(str(amount))


@pytest.fixture
def isolated_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codecs, "_registry", dict(codecs._registry))
    monkeypatch.setattr(codecs, "_composites", {})


ALL_DECODERS = [key_decoder, value_decoder]
ALL_ENCODERS = [key_encoder, value_encoder]
TYPES: list[Any] = [Order, bytes, str, int, dict, None]


# -- None payloads (tombstones) -----------------------------------------------------


@pytest.mark.parametrize("typ", TYPES)
@pytest.mark.parametrize("serializer", [None, "json"])
@pytest.mark.parametrize("build", ALL_DECODERS)
def test_none_payload_decodes_to_none(build: Any, typ: Any, serializer: Any) -> None:
    assert build(typ, serializer)(None) is None


@pytest.mark.parametrize("typ", TYPES)
@pytest.mark.parametrize("serializer", [None, "json"])
@pytest.mark.parametrize("build", ALL_ENCODERS)
def test_none_encodes_to_none(build: Any, typ: Any, serializer: Any) -> None:
    assert build(typ, serializer)(None) is None


# -- record types -------------------------------------------------------------------


def test_record_type_defaults_to_json() -> None:
    decode = value_decoder(Order, None)
    assert decode(b'{"account":"a","amount":3}') == Order("a", 3)


def test_record_type_uses_the_record_serializer_option() -> None:
    data = base64.b64encode(b'{"token":"t"}')
    assert value_decoder(Secret, None)(data) == Secret("t")
    encoded = value_encoder(Secret, None)(Secret("t"))
    assert encoded == Secret("t").dumps()
    assert json.loads(base64.b64decode(encoded or b""))["token"] == "t"


def test_explicit_serializer_wins_over_the_record_option() -> None:
    assert value_decoder(Secret, "json")(b'{"token":"t"}') == Secret("t")
    assert json.loads(value_encoder(Secret, "json")(Secret("t")) or b"") == {
        "token": "t",
        METADATA_KEY: {"ns": "tests.registry.Secret"},
    }


def test_record_decoding_converts_from_the_decoded_mapping() -> None:
    order = value_decoder(Order, None)(b'{"account":"a","extra":1}')
    assert order == Order("a")


def test_record_round_trip_through_encoder_and_decoder() -> None:
    order = Order("acct", 10)
    data = value_encoder(Order, None)(order)
    assert data == order.dumps()
    assert value_decoder(Order, None)(data) == order


def test_record_base_type_decodes_subclasses_by_namespace() -> None:
    decode = value_decoder(Animal, None)
    assert decode(Dog("rex").dumps()) == Dog("rex")
    assert decode(Cat("tom").dumps()) == Cat("tom")


def test_record_type_ignores_namespaces_of_unrelated_classes() -> None:
    payload = json.dumps(
        {"account": "a", METADATA_KEY: {"ns": "tests.registry.Dog"}}
    ).encode()
    assert value_decoder(Order, None)(payload) == Order("a")


def test_record_with_pickle_serializer() -> None:
    data = value_encoder(Order, "pickle")(Order("p", 1))
    assert value_decoder(Order, "pickle")(data) == Order("p", 1)


# -- bytes and str ------------------------------------------------------------------


def test_bytes_type_without_serializer_passes_bytes_through() -> None:
    payload = b"\x00\xff"
    assert value_decoder(bytes, None)(payload) is payload
    assert value_encoder(bytes, None)(payload) is payload
    assert value_encoder(bytes, None)("é") == "é".encode()


def test_bytes_type_with_serializer_decodes_it() -> None:
    assert value_decoder(bytes, "binary")(base64.b64encode(b"\x00")) == b"\x00"
    assert value_encoder(bytes, "binary")(b"\x00") == base64.b64encode(b"\x00")


def test_bytes_type_without_serializer_refuses_other_objects() -> None:
    with pytest.raises(EncodeError, match="bytes"):
        value_encoder(bytes, None)(3)


def test_str_type_without_serializer_is_utf8() -> None:
    assert key_decoder(str, None)("é".encode()) == "é"
    assert key_encoder(str, None)("é") == "é".encode()


def test_str_type_with_serializer() -> None:
    assert key_decoder(str, "json")(b'"k"') == "k"
    assert key_decoder(str, "json")(b"5") == "5"
    assert key_encoder(str, "json")("k") == b'"k"'


def test_str_type_rejects_invalid_utf8() -> None:
    with pytest.raises(KeyDecodeError, match="as str"):
        key_decoder(str, None)(b"\xff")


# -- other plain types ------------------------------------------------------------


@pytest.mark.parametrize(
    ("typ", "payload", "expected"),
    [
        (int, b"3", 3),
        (int, b'"3"', 3),
        (float, b"3", 3.0),
        (bool, b"true", True),
        (bool, b'"false"', False),
        (Decimal, b'"1.50"', Decimal("1.50")),
        (dict, b'{"a":1}', {"a": 1}),
        (list[int], b'["1",2]', [1, 2]),
    ],
)
def test_plain_types_decode_json_and_coerce(
    typ: Any, payload: bytes, expected: Any
) -> None:
    result = value_decoder(typ, None)(payload)
    assert result == expected
    assert type(result) is type(expected)


def test_plain_class_is_called_with_the_decoded_value() -> None:
    money = value_decoder(Money, None)(b'"2.50"')
    assert isinstance(money, Money)
    assert money.amount == Decimal("2.50")


def test_plain_type_refuses_values_it_cannot_become() -> None:
    with pytest.raises(ValueDecodeError, match="int") as info:
        value_decoder(int, None)(b'"three"')
    assert isinstance(info.value.__cause__, ValueError)


def test_plain_type_with_explicit_serializer() -> None:
    assert value_decoder(int, "json|binary")(base64.b64encode(b"7")) == 7
    assert value_encoder(int, "json|binary")(7) == base64.b64encode(b"7")


# -- no type ----------------------------------------------------------------------


def test_no_type_no_serializer_returns_raw_bytes() -> None:
    payload = b'{"a":1}'
    assert value_decoder(None, None)(payload) is payload


def test_no_type_decodes_with_the_serializer() -> None:
    assert value_decoder(None, "json")(b'{"a":[1]}') == {"a": [1]}


def test_no_type_turns_payloads_with_metadata_into_records() -> None:
    assert value_decoder(None, "json")(Dog("rex").dumps()) == Dog("rex")
    assert value_decoder(None, "pickle")(
        value_encoder(None, "pickle")(Dog("rex"))
    ) == Dog("rex")


def test_no_type_keeps_payloads_of_unknown_namespaces_as_dicts() -> None:
    payload = {"a": 1, METADATA_KEY: {"ns": "not.Registered"}}
    assert value_decoder(None, "json")(json.dumps(payload).encode()) == payload


# -- encoding without serializer -----------------------------------------------------


def test_encoding_without_serializer() -> None:
    encode = key_encoder(None, None)
    assert encode(b"k") == b"k"
    assert encode("k") == b"k"
    assert encode(3) == b"3"  # keys that are not bytes/str become JSON
    assert encode({"b": 1}) == b'{"b":1}'
    assert encode(Secret("t")) == Secret("t").dumps()  # the record's own codec


@pytest.mark.parametrize("typ", [None, Order, int, str])
@pytest.mark.parametrize("serializer", ["json", "json|binary", "pickle"])
def test_bytes_are_sent_as_already_serialized_payloads(
    typ: Any, serializer: str
) -> None:
    assert value_encoder(typ, serializer)(b"payload") == b"payload"
    assert value_encoder(typ, None)(b"payload") == b"payload"


def test_int_keys_round_trip_through_json() -> None:
    assert key_decoder(int, None)(key_encoder(int, None)(42)) == 42


def test_value_encoder_of_record_type_accepts_mappings() -> None:
    assert value_encoder(Order, None)({"account": "a"}) == b'{"account":"a"}'


# -- errors ------------------------------------------------------------------------


def test_key_and_value_decode_errors_are_distinct() -> None:
    with pytest.raises(KeyDecodeError):
        key_decoder(Order, None)(b"not json")
    with pytest.raises(ValueDecodeError):
        value_decoder(Order, None)(b"not json")


def test_plain_json_values_fail_like_any_other() -> None:
    # ``value_type=None`` takes a shorter path to the json codec; its errors
    # read the same as through `Codec.loads`.
    with pytest.raises(ValueDecodeError) as info:
        value_decoder(None, "json")(b"{oops")
    message = str(info.value)
    assert "json codec cannot decode data" in message
    assert "b'{oops'" in message
    assert isinstance(info.value.__cause__, DecodeError)
    assert isinstance(info.value.__cause__.__cause__, ValueError)
    assert value_decoder(None, "json")(b'{"a": [1, 2]}') == {"a": [1, 2]}
    assert value_decoder(None, "json")(None) is None


def test_decode_error_message_names_type_serializer_and_payload() -> None:
    with pytest.raises(ValueDecodeError) as info:
        value_decoder(Order, "json")(b"{oops")
    message = str(info.value)
    assert "value as Order" in message
    assert "'json'" in message
    assert "b'{oops'" in message
    assert isinstance(info.value, DecodeError)
    assert info.value.__cause__ is not None
    assert info.value.topic is None


def test_decode_error_of_an_invalid_record_chains_the_validation_error() -> None:
    with pytest.raises(ValueDecodeError, match="missing required field") as info:
        value_decoder(Order, None)(b'{"amount":1}')
    assert isinstance(info.value.__cause__, RecordValidationError)
    assert info.value.field == "account"


def test_record_type_refuses_payloads_that_are_not_objects() -> None:
    with pytest.raises(ValueDecodeError, match="expects a mapping, got list"):
        value_decoder(Order, None)(b"[1, 2]")


def test_decode_error_preview_is_short() -> None:
    payload = b"x" * 1000
    with pytest.raises(KeyDecodeError) as info:
        key_decoder(int, None)(payload)
    message = str(info.value)
    assert "b'" + "x" * 48 + "'... (1000 bytes)" in message
    assert len(message) < 400


def test_encode_error_names_type_and_serializer() -> None:
    with pytest.raises(EncodeError, match=r"for str \(serializer None\)"):
        key_encoder(str, None)(object())
    with pytest.raises(EncodeError, match="'json'") as info:
        value_encoder(None, "json")(object())
    assert info.value.__cause__ is not None


def test_unknown_serializer_fails_when_building() -> None:
    with pytest.raises(UnknownCodecError, match="'nope'"):
        value_decoder(int, "nope")


# -- caching ------------------------------------------------------------------------


def test_functions_are_built_once_per_type_and_serializer() -> None:
    assert value_decoder(Order, None) is value_decoder(Order, None)
    assert value_decoder(Order, None) is not value_decoder(Order, "json")
    assert value_decoder(Order, None) is not key_decoder(Order, None)
    assert key_encoder(int, None) is key_encoder(int, None)


def test_codec_instances_work_as_serializers() -> None:
    codec = get_codec("json") | get_codec("binary")
    assert value_decoder(int, codec)(base64.b64encode(b"5")) == 5


@pytest.mark.usefixtures("isolated_registry")
def test_registering_a_codec_invalidates_cached_functions() -> None:
    register("tests-swap", get_codec("json"))
    first = value_decoder(None, "tests-swap")
    assert first(b"[1]") == [1]
    register("tests-swap", get_codec("binary"))
    second = value_decoder(None, "tests-swap")
    assert second is not first
    assert second(base64.b64encode(b"[1]")) == b"[1]"


@pytest.mark.parametrize(
    "value",
    ["plain", 'é "quoted"\n\t\\', "", 0, -7, 2**80, True, 1.5, [1, "a"], {"k": None}],
)
@pytest.mark.parametrize("typ", [None, int, str, Order])
def test_json_str_and_int_shortcuts_write_the_codecs_bytes(
    value: Any, typ: Any
) -> None:
    # Strings and ints skip the general path; the bytes must be the codec's.
    codec = get_codec("json")
    assert value_encoder(typ, "json")(value) == codec.dumps(value)
    if not isinstance(value, str):
        assert value_encoder(None, None)(value) == codec.dumps(value)


def test_json_shortcut_failures_name_the_value_type_and_serializer() -> None:
    with pytest.raises(EncodeError, match=r"'\\ud800' \(str\) for str.*'json'"):
        value_encoder(str, "json")("\ud800")


def test_a_json_codec_subclass_gets_no_shortcut() -> None:
    class Loud(codecs.JSONCodec):
        def _dumps(self, obj: Any) -> bytes:
            return b"!" + super()._dumps(obj)

    register("tests-loud", Loud())
    assert value_encoder(None, "tests-loud")(5) == b"!5"
    assert value_encoder(None, "tests-loud")("a") == b'!"a"'
