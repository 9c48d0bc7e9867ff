"""Counters kept in the database: the one place every host can add to (a process's own counter is lost with it
and counts only what that process saw)."""

from __future__ import annotations

from django.db import models


class UploadRefusal(models.Model):
    """How many uploads (a file through the API or a page, a DICOM instance by C-STORE or STOW-RS) were refused
    for one reason, the error's code (``not_an_image``, ``dicom_patient_mismatch``...)."""

    reason = models.CharField(max_length=64, unique=True)
    count = models.PositiveBigIntegerField(default=0)
    last_refused_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"Upload refusal #{self.id} {self.reason}: {self.count}"
