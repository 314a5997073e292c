"""Records: declaration, construction, validation, decoding and encoding."""

from __future__ import annotations

import base64
import copy
import json
import pickle
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum, IntEnum
from typing import Any, ClassVar
from uuid import UUID

import pytest

from django_faust.exceptions import ImproperlyConfigured, RecordValidationError
from django_faust.models import (
    METADATA_KEY,
    MISSING,
    FieldDescriptor,
    Record,
    decode_model_payload,
    registry,
)

# Models referring to other models live at module level: annotations are
# evaluated in the module's globals.


class Other(Record, namespace="tests.models.Other"):
    name: str
    qty: int = 1


class Point(Record, serializer="json", namespace="tests.models.Point"):
    x: int
    y: int = 0
    tags: list[str] = []
    when: datetime | None = None
    price: Decimal = Decimal("0")
    child: Other | None = None
    items: list[Other] = []
    by_name: dict[str, Other] = {}


class Checked(Record, namespace="tests.models.Checked", validation=True):
    count: int
    ratio: float = 0.0
    label: str = ""
    flag: bool = False
    amount: Decimal = Decimal("0")
    when: datetime | None = None
    child: Other | None = None
    items: list[Other] = []
    scores: dict[str, int] = {}


class Early(Record, namespace="tests.models.Early"):
    late: Late | None = None  # defined below
    lates: list[Late] = []


class Late(Record, namespace="tests.models.Late"):
    value: int


class Tree(Record, namespace="tests.models.Tree"):
    label: str
    children: list[Tree] = []


class Shape(Record, abstract=True):
    name: str


class Circle(Shape, namespace="tests.models.Circle"):
    radius: float


class Square(Shape, namespace="tests.models.Square"):
    side: float


class Drawing(Record, namespace="tests.models.Drawing"):
    shapes: list[Shape] = []
    main: Shape | None = None


class Frozen(Record, namespace="tests.models.Frozen", frozen=True):
    a: int
    b: str = ""


class Event(
    Record, namespace="tests.models.Event", validation=True, serializer="json|binary"
):
    id: str
    at: datetime | None = None


class Click(Event, namespace="tests.models.Click"):
    button: str  # no default after a default: keyword-only


class Color(Enum):
    RED = "red"
    BLUE = "blue"


class Misc(Record, namespace="tests.models.Misc"):
    color: Color | None = None
    uid: UUID | None = None
    day: date | None = None
    seq: tuple[int, ...] = ()
    pair: tuple[int, str] | None = None
    unique: set[str] = set()
    by_id: dict[int, str] = {}
    anything: Any = None


class Bare(Record, namespace="tests.models.Bare", include_metadata=False):
    a: int


class RawDates(Record, namespace="tests.models.RawDates", isodates=False):
    when: datetime | None = None


# -- construction ---------------------------------------------------------------


def test_positional_and_keyword_construction_with_defaults() -> None:
    p = Point(1, 2, tags=["a"])
    assert (p.x, p.y, p.tags, p.when, p.price, p.child) == (
        1,
        2,
        ["a"],
        None,
        Decimal("0"),
        None,
    )
    assert Point(x=5).y == 0


def test_missing_required_field_is_a_type_error_naming_it() -> None:
    with pytest.raises(TypeError, match="'x'"):
        Point()


def test_unknown_keyword_is_a_type_error_naming_it() -> None:
    with pytest.raises(TypeError, match="'z'"):
        Point(1, z=3)


def test_too_many_positional_arguments() -> None:
    with pytest.raises(TypeError):
        Late(1, 2)


def test_mutable_defaults_are_not_shared() -> None:
    a, b = Point(1), Point(2)
    a.tags.append("x")
    a.by_name["k"] = Other("o")
    assert b.tags == []
    assert b.by_name == {}
    c = Point.from_data({"x": 3})
    assert c.tags == [] and c.tags is not b.tags


def test_repr() -> None:
    assert repr(Late(3)) == "Late(value=3)"
    assert repr(Other("a")) == "Other(name='a', qty=1)"


def test_recursive_repr_does_not_loop() -> None:
    root = Tree("root")
    root.children.append(root)
    assert repr(root) == "Tree(label='root', children=[...])"


def test_field_values_are_plain_instance_attributes() -> None:
    p = Point(1)
    assert p.__dict__["x"] == 1
    assert "x" not in Point.__dict__  # nothing on the class slows access down
    p.x = 7
    assert p.x == 7


def test_equality_compares_class_and_values() -> None:
    assert Point(1, tags=["a"]) == Point(1, tags=["a"])
    assert Point(1) != Point(2)
    assert Late(1) != Frozen(1)
    assert Late(1) != {"value": 1}


def test_mutable_records_are_unhashable() -> None:
    with pytest.raises(TypeError):
        hash(Point(1))


def test_frozen_records_are_immutable_and_hashable() -> None:
    f = Frozen(1, "b")
    assert hash(f) == hash(Frozen(1, "b"))
    assert {f: "value"}[Frozen(1, "b")] == "value"
    with pytest.raises(AttributeError, match="frozen"):
        f.a = 2
    with pytest.raises(AttributeError, match="frozen"):
        del f.a
    assert Frozen.from_data({"a": 2}) == Frozen(2)


def test_frozen_and_mutable_records_do_not_mix() -> None:
    with pytest.raises(TypeError, match="frozen"):

        class Thawed(Frozen, frozen=False):
            c: int = 0


def test_post_init_runs_after_init_and_from_data() -> None:
    class Stamped(Record):
        value: int

        def __post_init__(self) -> None:
            self.doubled = self.value * 2

    assert Stamped(2).doubled == 4
    assert Stamped.from_data({"value": 3}).doubled == 6


def test_copy_and_pickle() -> None:
    p = Point(1, tags=["a"], child=Other("o"))
    assert copy.copy(p) == p
    assert copy.deepcopy(p) == p
    assert pickle.loads(pickle.dumps(p)) == p
    assert pickle.loads(pickle.dumps(Frozen(1))) == Frozen(1)


# -- class declaration ------------------------------------------------------------


def test_unknown_class_option_is_rejected() -> None:
    with pytest.raises(TypeError, match="serialiser"):

        class Typo(Record, serialiser="json"):
            a: int


def test_field_names_may_not_shadow_record_methods() -> None:
    with pytest.raises(TypeError, match="'dumps'"):

        class Clash(Record):
            dumps: int  # type: ignore[assignment]


def test_classvars_are_not_fields() -> None:
    class WithClassVar(Record):
        a: int
        kind: ClassVar[str] = "w"

    assert WithClassVar._options.field_names == ("a",)
    assert WithClassVar(1).kind == "w"


def test_default_namespace_is_module_and_qualname() -> None:
    class Local(Record):
        a: int

    expected = f"{__name__}.{Local.__qualname__}"
    assert Local._options.namespace == expected
    assert registry[expected] is Local


def test_unresolvable_annotation_fails_on_first_use_naming_it() -> None:
    class Broken(Record):
        a: NoSuchType  # type: ignore[name-defined]  # noqa: F821

    with pytest.raises(ImproperlyConfigured, match="NoSuchType"):
        Broken.from_data({"a": 1})
    with pytest.raises(ImproperlyConfigured, match="NoSuchType"):
        Broken(1)


# -- field descriptors ------------------------------------------------------------


def descriptor(attribute: Any) -> FieldDescriptor:
    """``Model.field`` is typed as the field's type; tell mypy what it is."""
    assert isinstance(attribute, FieldDescriptor)
    return attribute


def test_class_attribute_is_a_field_descriptor() -> None:
    field = descriptor(Point.x)
    assert field.field == "x"
    assert field.type is int
    assert field.required is True
    assert field.default is MISSING
    assert field.model is Point
    assert field.getattr(Point(4)) == 4


def test_field_descriptor_of_optional_and_nested_fields() -> None:
    assert descriptor(Point.y).required is False
    assert descriptor(Point.y).default == 0
    assert descriptor(Point.child).type == Other | None
    assert descriptor(Point.items).type == list[Other]
    assert descriptor(Point.tags).get_default() == []
    assert (
        descriptor(Point.tags).get_default() is not descriptor(Point.tags).get_default()
    )
    assert [descriptor(f).index for f in (Point.x, Point.y, Point.tags)] == [0, 1, 2]


def test_unknown_class_attribute_still_raises() -> None:
    with pytest.raises(AttributeError, match="nope"):
        Point.nope  # noqa: B018


def test_inherited_fields_get_descriptors_of_the_subclass() -> None:
    assert descriptor(Click.id).model is Click
    assert descriptor(Click.button).type is str


# -- from_data: decoding ------------------------------------------------------------


def test_from_data_converts_nested_records_dates_and_decimals() -> None:
    p = Point.from_data(
        {
            "x": 1,
            "when": "2024-01-02T03:04:05+00:00",
            "price": "1.50",
            "child": {"name": "c", "qty": 2},
            "items": [{"name": "i1"}, {"name": "i2", "qty": 3}],
            "by_name": {"k": {"name": "v"}},
        }
    )
    assert p.when == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert p.price == Decimal("1.50")
    assert p.child == Other("c", 2)
    assert p.items == [Other("i1"), Other("i2", 3)]
    assert p.by_name == {"k": Other("v")}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("2.50", Decimal("2.50")), (2, Decimal(2)), (0.1, Decimal("0.1"))],
)
def test_from_data_decimal_from_string_or_number(raw: Any, expected: Decimal) -> None:
    assert Point.from_data({"x": 1, "price": raw}).price == expected


def test_from_data_keeps_values_already_of_the_right_type() -> None:
    child = Other("c")
    p = Point.from_data({"x": 1, "child": child, "when": datetime(2024, 1, 1)})
    assert p.child is child
    assert p.when == datetime(2024, 1, 1)


def test_from_data_ignores_unknown_keys_and_metadata() -> None:
    p = Point.from_data({"x": 1, "unknown": 2, METADATA_KEY: {"ns": "elsewhere"}})
    assert p == Point(1)
    assert not hasattr(p, "unknown")


def test_from_data_does_not_validate_plain_fields_without_validation() -> None:
    assert Point.from_data({"x": "not an int"}).x == "not an int"


def test_from_data_missing_required_field() -> None:
    with pytest.raises(
        RecordValidationError, match="missing required field 'x'"
    ) as info:
        Point.from_data({"y": 1})
    assert info.value.field == "x"
    assert info.value.model is Point


def test_from_data_rejects_non_mappings() -> None:
    with pytest.raises(TypeError, match="mapping"):
        Point.from_data([1, 2])  # type: ignore[arg-type]


def test_from_data_bad_iso_date_names_field() -> None:
    with pytest.raises(RecordValidationError, match=r"Point\.when.*'yesterday'"):
        Point.from_data({"x": 1, "when": "yesterday"})


def test_from_data_other_field_kinds() -> None:
    uid = UUID(int=7)
    m = Misc.from_data(
        {
            "color": "red",
            "uid": str(uid),
            "day": "2024-03-04",
            "seq": [1, 2],
            "pair": [1, "a"],
            "unique": ["b", "a", "b"],
            "by_id": {"1": "one", "2": "two"},
            "anything": {"k": [1]},
        }
    )
    assert m.color is Color.RED
    assert m.uid == uid
    assert m.day == date(2024, 3, 4)
    assert m.seq == (1, 2)
    assert m.pair == (1, "a")
    assert m.unique == {"a", "b"}
    assert m.by_id == {1: "one", 2: "two"}
    assert m.anything == {"k": [1]}
    assert Misc.loads(m.dumps()) == m


def test_isodates_false_leaves_date_strings_alone() -> None:
    assert RawDates.from_data({"when": "2024-01-01"}).when == "2024-01-01"


def test_forward_references_resolve_on_first_use() -> None:
    e = Early.from_data({"late": {"value": 1}, "lates": [{"value": 2}]})
    assert e.late == Late(1)
    assert e.lates == [Late(2)]
    assert descriptor(Early.late).type == Late | None


def test_self_referencing_records() -> None:
    tree = Tree("root", [Tree("a", [Tree("a1")]), Tree("b")])
    data = tree.dumps()
    assert Tree.loads(data) == tree
    assert Tree.loads(data).children[0].children[0].label == "a1"


# -- representation and serialization ----------------------------------------------


def test_to_representation_order_nesting_and_metadata() -> None:
    p = Point(1, tags=["t"], child=Other("c"), items=[Other("i")])
    rep = p.to_representation()
    assert list(rep) == [
        "x",
        "y",
        "tags",
        "when",
        "price",
        "child",
        "items",
        "by_name",
        METADATA_KEY,
    ]
    other_meta = {"ns": "tests.models.Other"}
    assert rep["child"] == {"name": "c", "qty": 1, METADATA_KEY: other_meta}
    assert rep["items"] == [{"name": "i", "qty": 1, METADATA_KEY: other_meta}]
    assert rep[METADATA_KEY] == {"ns": "tests.models.Point"}


def test_metadata_of_a_representation_is_not_shared() -> None:
    first = Late(1).to_representation()
    first[METADATA_KEY]["ns"] = "changed"
    assert Late(1).to_representation()[METADATA_KEY] == {"ns": "tests.models.Late"}


def test_include_metadata_false() -> None:
    assert Bare(1).to_representation() == {"a": 1}
    assert Bare(1).dumps() == b'{"a":1}'


def test_asdict_is_shallow_and_has_no_metadata() -> None:
    child = Other("c")
    d = Point(1, child=child).asdict()
    assert d["child"] is child
    assert METADATA_KEY not in d
    assert list(d) == list(Point._options.field_names)


def test_json_bytes_are_stable() -> None:
    p = Point(
        1,
        2,
        tags=["a"],
        when=datetime(2024, 1, 2, 3, 4, 5),
        price=Decimal("9.99"),
        child=Other("c"),
    )
    expected = (
        b'{"x":1,"y":2,"tags":["a"],"when":"2024-01-02T03:04:05","price":"9.99",'
        b'"child":{"name":"c","qty":1,"__faust":{"ns":"tests.models.Other"}},'
        b'"items":[],"by_name":{},"__faust":{"ns":"tests.models.Point"}}'
    )
    assert p.dumps() == expected
    assert p.dumps() == expected
    assert Point.loads(expected).dumps() == expected


def test_dumps_and_loads_round_trip_every_field_kind() -> None:
    p = Point(
        1,
        tags=["a", "b"],
        when=datetime(2024, 1, 2, tzinfo=UTC),
        price=Decimal("0.10"),
        child=Other("c", 5),
        items=[Other("i")],
        by_name={"k": Other("v")},
    )
    assert Point.loads(p.dumps()) == p
    assert Point.loads(p.dumps("pickle"), serializer="pickle") == p


def test_serializer_option_is_used_and_can_be_overridden() -> None:
    e = Event("e1")
    data = e.dumps()
    assert json.loads(base64.b64decode(data))["id"] == "e1"
    assert Event.loads(data) == e
    assert json.loads(e.dumps(serializer="json"))["id"] == "e1"
    assert Event.loads(e.dumps("json"), "json") == e


# -- validation ------------------------------------------------------------------


def test_validation_coerces_obvious_values() -> None:
    c = Checked(
        count="3",
        ratio="1.5",
        label="l",
        flag="false",
        amount="1.10",
        when="2024-01-02T03:04:05",
        child={"name": "c"},
        items=[{"name": "i"}],
        scores={"a": "2"},
    )
    assert c.count == 3
    assert c.ratio == 1.5
    assert c.flag is False
    assert c.amount == Decimal("1.10")
    assert c.when == datetime(2024, 1, 2, 3, 4, 5)
    assert c.child == Other("c")
    assert c.items == [Other("i")]
    assert c.scores == {"a": 2}


@pytest.mark.parametrize(
    ("kwargs", "field", "fragment"),
    [
        ({"count": "abc"}, "count", "'abc'"),
        ({"count": True}, "count", "True"),
        ({"count": 1, "ratio": "fast"}, "ratio", "'fast'"),
        ({"count": 1, "label": 5}, "label", "expected str"),
        ({"count": 1, "flag": "maybe"}, "flag", "'maybe'"),
        ({"count": 1, "amount": "lots"}, "amount", "'lots'"),
        ({"count": 1, "when": "soon"}, "when", "'soon'"),
        ({"count": 1, "child": 3}, "child", "expected Other"),
        ({"count": 1, "items": ["x"]}, "items", "item 0"),
        ({"count": 1, "scores": {"a": "z"}}, "scores", "'z'"),
        ({"count": None}, "count", "None"),
    ],
)
def test_validation_errors_name_model_field_and_value(
    kwargs: dict[str, Any], field: str, fragment: str
) -> None:
    with pytest.raises(RecordValidationError) as info:
        Checked(**kwargs)
    error = info.value
    assert isinstance(error, ValueError)
    assert error.field == field
    assert error.model is Checked
    assert error.value == kwargs[field]
    assert str(error).startswith(f"Checked.{field}: ")
    assert fragment in str(error)


def test_validation_error_of_a_nested_record_names_both_levels() -> None:
    with pytest.raises(RecordValidationError, match=r"Checked\.child: Other: missing"):
        Checked(1, child={"qty": 2})


def test_validation_accepts_subclasses_of_the_declared_type() -> None:
    class Level(IntEnum):
        HIGH = 3

    c = Checked(Level.HIGH, when=LocalTime(2024, 1, 1))
    assert c.count is Level.HIGH
    assert type(c.when) is LocalTime


class LocalTime(datetime):
    """A datetime subclass: valid wherever a datetime is."""


def test_validation_accepts_none_for_optional_fields_and_trusts_defaults() -> None:
    c = Checked(1, when=None, child=None)
    assert c.when is None and c.child is None


def test_validation_applies_to_from_data() -> None:
    assert Checked.from_data({"count": "4"}).count == 4
    with pytest.raises(RecordValidationError, match=r"Checked\.count"):
        Checked.from_data({"count": "four"})


def test_validate_and_is_valid_work_without_the_validation_option() -> None:
    good = Point(1)
    assert good.validate() == []
    assert good.is_valid()
    bad = Point("one", tags=["a", 2])  # type: ignore[arg-type]
    errors = bad.validate()
    assert [e.field for e in errors] == ["x", "tags"]
    assert all(isinstance(e, RecordValidationError) for e in errors)
    assert not bad.is_valid()
    assert bad.x == "one"  # validate() reports, it does not change the record


def test_validate_sees_later_assignments() -> None:
    c = Checked(1)
    c.count = "nope"  # type: ignore[assignment]
    assert [e.field for e in c.validate()] == ["count"]


# -- inheritance --------------------------------------------------------------------


def test_subclass_inherits_fields_and_options() -> None:
    assert Click._options.field_names == ("id", "at", "button")
    assert Click._options.validation is True
    assert Click._options.serializer == "json|binary"
    assert Click._options.namespace == "tests.models.Click"
    c = Click("c1", button="left")
    assert Click.loads(c.dumps()) == c
    with pytest.raises(RecordValidationError, match=r"Click\.button"):
        Click("c1", button=3)


def test_required_field_after_defaults_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        Click("c1", None, "left")  # type: ignore[misc]


def test_subclass_may_change_a_default_by_annotating_again() -> None:
    class Base(Record):
        a: int
        b: int = 1

    class Child(Base):
        b: int = 2

    assert Child(0).b == 2
    assert Child._options.field_names == ("a", "b")
    assert Base(0).b == 1


def test_subclass_may_not_hide_a_field_without_annotation() -> None:
    with pytest.raises(TypeError, match="hides the inherited field 'y'"):

        class Hidden(Point):
            y = 5


# -- namespaces and polymorphism -----------------------------------------------------


def test_registry_maps_namespaces_to_concrete_classes() -> None:
    assert registry["tests.models.Point"] is Point
    assert registry["tests.models.Circle"] is Circle
    assert Shape not in registry.values()


def test_abstract_records_cannot_be_built() -> None:
    with pytest.raises(TypeError, match="abstract"):
        Shape("s")
    with pytest.raises(TypeError, match="abstract"):
        Shape.from_data({"name": "s"})
    with pytest.raises(TypeError, match="abstract"):
        Record()


def test_decode_model_payload_uses_the_namespace() -> None:
    payload = json.loads(Circle("c", 2.0).dumps())
    assert decode_model_payload(payload) == Circle("c", 2.0)


def test_decode_model_payload_leaves_other_values_alone() -> None:
    unknown = {"a": 1, METADATA_KEY: {"ns": "nobody.Knows"}}
    assert decode_model_payload(unknown) is unknown
    assert decode_model_payload([1]) == [1]
    assert decode_model_payload({"a": 1}) == {"a": 1}


def test_decode_model_payload_with_preferred_class() -> None:
    assert decode_model_payload({"value": 1}, Late) == Late(1)
    # A namespace of an unrelated class does not win over the preferred one.
    payload = {"value": 1, METADATA_KEY: {"ns": "tests.models.Other"}}
    assert decode_model_payload(payload, Late) == Late(1)


def test_base_class_loads_subclass_payloads() -> None:
    assert Shape.loads(Square("s", 1.0).dumps()) == Square("s", 1.0)


def test_nested_fields_decode_to_the_subclass_named_by_the_payload() -> None:
    drawing = Drawing(shapes=[Circle("c", 1.0), Square("s", 2.0)], main=Circle("m", 3))
    decoded = Drawing.loads(drawing.dumps())
    assert decoded == drawing
    assert [type(s) for s in decoded.shapes] == [Circle, Square]
    assert type(decoded.main) is Circle
