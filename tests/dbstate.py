"""The whole database as rows, to prove that a refused request wrote nothing."""

from __future__ import annotations

from django.apps import apps
from django.contrib.admin.models import LogEntry

from fetalsite.audit.models import AccessLogEntry, AccessLogHead
from fetalsite.metrics.models import UploadRefusal

# Rows that reading or being refused may add (the access log records refusals, /metrics counts refused uploads);
# everything else must stay as it was.
NOT_COMPARED = {AccessLogEntry, AccessLogHead, LogEntry, UploadRefusal}


def database_snapshot() -> dict[str, list[tuple]]:
    """Every row of every table but those above, in primary-key order (plain tuples: cheap to take and compare)."""
    return {
        model._meta.label: list(model._default_manager.order_by("pk").values_list())
        for model in apps.get_models()
        if model not in NOT_COMPARED and not model._meta.label.startswith(("axes.", "sessions."))
    }
