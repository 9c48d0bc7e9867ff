"""django-filter pieces every app's list API uses: record ids, UTC date-times and a stable ordering.

FilterSets narrow a queryset a selector has already scoped to the user's clinic; they never widen it."""

from __future__ import annotations

import datetime

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField
from drf_spectacular.utils import extend_schema_field

from fetalsite.core.api_utils import DB_INTEGER_MAX, DB_INTEGER_MIN


class _DatabaseIdField(forms.IntegerField):
    """A whole number the database can compare with an id: beyond signed 64 bits SQLite raises
    OverflowError (a 500), so such a value is refused as invalid input instead."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", DB_INTEGER_MIN)
        kwargs.setdefault("max_value", DB_INTEGER_MAX)
        super().__init__(*args, **kwargs)


@extend_schema_field({"type": "integer", "format": "int64", "minimum": DB_INTEGER_MIN, "maximum": DB_INTEGER_MAX})
class IdFilter(django_filters.NumberFilter):
    """A record id: a whole number in the database's range (the default NumberFilter takes decimals).
    Every id filter of every list uses this class."""

    field_class = _DatabaseIdField


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


class StableOrderingFilter(django_filters.OrderingFilter):
    """``?ordering=field`` or ``-field``; the id breaks ties so that pages never overlap."""

    def filter(self, qs, value):
        value = [param for param in value or [] if param]  # "?ordering=," gives empty parts
        if not value:
            return qs
        ordering = [self.get_ordering_value(param) for param in value]
        descending = ordering[0].startswith("-")
        return qs.order_by(*ordering, "-id" if descending else "id")
