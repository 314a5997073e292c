"""Our errors fit into Django's: a project catching Django's kinds catches ours."""

from __future__ import annotations

import warnings

import pytest
from django.core import exceptions as django_exceptions

from django_faust import exceptions
from django_faust.exceptions import (
    DjangoFaustError,
    ImproperlyConfigured,
    RecordValidationError,
)
from django_faust.models import Record


def test_improperly_configured_is_djangos_and_ours() -> None:
    with pytest.raises(django_exceptions.ImproperlyConfigured):
        raise ImproperlyConfigured("FAUST['BROKER'] is wrong")
    assert issubclass(ImproperlyConfigured, DjangoFaustError)


def test_record_validation_error_does_not_shadow_djangos() -> None:
    assert RecordValidationError is not django_exceptions.ValidationError
    assert issubclass(RecordValidationError, ValueError)
    assert issubclass(RecordValidationError, DjangoFaustError)

    class Point(Record, validation=True):
        x: int

    with pytest.raises(RecordValidationError) as info:
        Point(x="not a number")
    assert info.value.field == "x"


def test_old_validation_error_name_still_imports_with_a_warning() -> None:
    with pytest.warns(DeprecationWarning, match="RecordValidationError"):
        from django_faust.exceptions import ValidationError
    assert ValidationError is RecordValidationError


def test_unknown_names_are_still_attribute_errors() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(AttributeError, match="NoSuchError"):
            exceptions.NoSuchError  # noqa: B018
