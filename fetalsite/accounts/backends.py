"""Password authentication for people only."""

from __future__ import annotations

from django.contrib.auth.backends import ModelBackend


class PersonBackend(ModelBackend):
    """Django's ModelBackend, refusing service accounts (a DICOM sender's) as it refuses inactive ones: even with a
    password somehow set, nobody logs in, or obtains an API token, as a machine. Sessions go through it too
    (``get_user``), so one could not outlive the rule either."""

    def user_can_authenticate(self, user) -> bool:
        return super().user_can_authenticate(user) and not getattr(user, "is_service_account", False)
