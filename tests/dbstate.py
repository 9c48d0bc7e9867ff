"""The whole database as rows, to prove that a refused request wrote nothing."""

from __future__ import annotations

from django.apps import apps
from django.contrib.admin.models import LogEntry
from django.db import connection

from fetalsite.audit.models import AccessLogEntry, AccessLogHead
from fetalsite.metrics.models import UploadRefusal

# Rows that reading or being refused may add (the access log records refusals, /metrics counts refused uploads);
# everything else must stay as it was.
NOT_COMPARED = {AccessLogEntry, AccessLogHead, LogEntry, UploadRefusal}


def _compared_models() -> list:
    return [
        model
        for model in apps.get_models(include_auto_created=True)  # many-to-many tables too (a user's groups)
        if model not in NOT_COMPARED
        and not model._meta.proxy  # a proxy's rows are its concrete model's, compared once
        and not model._meta.label.startswith(("axes.", "sessions."))
    ]


def database_snapshot() -> dict[str, list[tuple] | str]:
    """Every row of every table but those above, in primary-key order.

    On PostgreSQL all tables come back in one query, each as the JSON text of its rows (every column, in
    primary-key order): equal text is equal rows. The role matrix alone takes ~300 snapshots of ~45 tables;
    one round trip instead of one query a table took a snapshot from 1.6 s to 0.08 s (medians of 30, on the
    2-core machine at load 7). Elsewhere (SQLite, in process) each model's rows as plain tuples."""
    models = _compared_models()
    if connection.vendor != "postgresql":
        return {model._meta.label: list(model._default_manager.order_by("pk").values_list()) for model in models}
    quote = connection.ops.quote_name
    # Table and column names come from the models, quoted: nothing in the query comes from a request.
    tables = ", ".join(
        f"(SELECT coalesce(json_agg(t ORDER BY t.{quote(model._meta.pk.column)})::text, '[]')"  # noqa: S608
        f" FROM {quote(model._meta.db_table)} t)"
        for model in models
    )
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {tables}")
        rows = cursor.fetchone()
    return dict(zip((model._meta.label for model in models), rows, strict=True))
