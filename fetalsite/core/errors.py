"""Rule violations raised by services, mapped to HTTP by one exception handler."""

from __future__ import annotations

from typing import Any


class ApplicationError(Exception):
    http_status = 400
    code = "application_error"

    def __init__(self, message: str, *, extra: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.extra = extra or {}
