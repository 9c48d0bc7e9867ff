"""Rule violations raised by services, mapped to HTTP by one exception handler."""

from __future__ import annotations

from typing import Any


class ApplicationError(Exception):
    http_status = 400
    code = "application_error"

    def __init__(
        self, message: str, *, fields: dict[str, list[str]] | None = None, extra: dict[str, Any] | None = None
    ):
        super().__init__(message)
        self.message = message
        # Per-field messages, when the rule is about particular fields (a taken MRN is about `mrn`).
        self.fields = fields
        # Further details for machines, answered beside "detail" and "code" (``existing_id``).
        self.extra = extra or {}
