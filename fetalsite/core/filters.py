"""django-filter pieces every app's list API uses: record ids, strict booleans, UTC date-times and a
stable ordering.

FilterSets narrow a queryset a selector has already scoped to the user's clinic; they never widen it."""

from __future__ import annotations

import datetime

import django_filters
from django import forms
from django_filters.fields import BaseCSVField, IsoDateTimeField
from drf_spectacular.utils import extend_schema_field

from fetalsite.core.api_utils import DB_INTEGER_MAX, DB_INTEGER_MIN, parse_whole_number


class _DatabaseIdField(forms.IntegerField):
    """A whole number the database can compare with an id: beyond signed 64 bits SQLite raises
    OverflowError (a 500), so such a value is refused as invalid input instead. Written plainly:
    IntegerField would also take ``1.0``, `` 1 `` or other scripts' digits."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", DB_INTEGER_MIN)
        kwargs.setdefault("max_value", DB_INTEGER_MAX)
        super().__init__(*args, **kwargs)

    def to_python(self, value):
        if value in self.empty_values:
            return None
        number = parse_whole_number(str(value))
        if number is None:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return number


@extend_schema_field({"type": "integer", "format": "int64", "minimum": DB_INTEGER_MIN, "maximum": DB_INTEGER_MAX})
class IdFilter(django_filters.NumberFilter):
    """A record id: a whole number in the database's range (the default NumberFilter takes decimals).
    Every id filter of every list uses this class."""

    field_class = _DatabaseIdField


class _StrictBooleanField(forms.Field):
    """Exactly ``true`` or ``false``. Django's boolean fields read ``1``, ``yes`` or ``maybe`` as "no
    filter", which would hand a review worklist every image; here any other spelling is invalid."""

    widget = forms.TextInput  # passes the raw text through (NullBooleanSelect maps unknown text to None)
    default_error_messages = {"invalid": "Enter true or false."}
    _VALUES = {"true": True, "false": False}

    def to_python(self, value):
        if value is None:  # the parameter is absent: no filter
            return None
        if value not in self._VALUES:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return self._VALUES[value]


class StrictBooleanFilter(django_filters.BooleanFilter):
    """``true`` or ``false``, nothing else (``1``, ``yes``, ``TRUE`` and an empty value answer 400).
    Every boolean filter of every list uses this class; its description says so."""

    field_class = _StrictBooleanField

    def __init__(self, *args, help_text: str, **kwargs):
        super().__init__(*args, help_text=f"{help_text} Exactly `true` or `false`.", **kwargs)


class _UtcIsoDateTimeField(IsoDateTimeField):
    def to_python(self, value):
        value = super().to_python(value)
        if value is None:
            return None
        try:
            # Any offset Python accepts (up to ±23:59), but the database takes UTC.
            return value.astimezone(datetime.UTC)
        except OverflowError:
            raise forms.ValidationError("This date and time is out of range.", code="invalid") from None


class UtcIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    """An ISO 8601 date-time with any offset, compared in UTC."""

    field_class = _UtcIsoDateTimeField


class _NoEmptyPartsCSVField(BaseCSVField):
    def clean(self, value):
        # django-filter would drop the empty parts of "?ordering=,exam_date" without a word.
        if value is not None and "" in value:
            raise forms.ValidationError("Leave no empty part between commas.", code="invalid")
        return super().clean(value)


class StableOrderingFilter(django_filters.OrderingFilter):
    """``?ordering=field`` or ``-field`` (several, comma-separated); the id breaks ties so that pages
    never overlap."""

    base_field_class = _NoEmptyPartsCSVField

    def filter(self, qs, value):
        if not value:
            return qs
        ordering = [self.get_ordering_value(param) for param in value]
        descending = ordering[0].startswith("-")
        return qs.order_by(*ordering, "-id" if descending else "id")
