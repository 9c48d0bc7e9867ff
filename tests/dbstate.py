"""The whole database as text, to prove that a refused request wrote nothing."""

from __future__ import annotations

from django.apps import apps
from django.contrib.admin.models import LogEntry
from django.core import serializers

from fetalsite.audit.models import AccessLogEntry, AccessLogHead

# Rows that reading or being refused may add (the access log records refusals); everything else must stay as it was.
NOT_COMPARED = {AccessLogEntry, AccessLogHead, LogEntry}


def database_snapshot() -> dict[str, str]:
    return {
        model._meta.label: serializers.serialize("json", model._default_manager.order_by("pk"))
        for model in apps.get_models()
        if model not in NOT_COMPARED and not model._meta.label.startswith(("axes.", "sessions."))
    }
