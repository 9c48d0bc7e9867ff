"""Clinic scoping: the one place that decides which clinics a user may see."""

from __future__ import annotations

from typing import TypeVar

from django.db.models import QuerySet

Q = TypeVar("Q", bound=QuerySet)


def visible_clinic_ids(*, user) -> list[int] | None:
    """Clinic ids the user may see; None means every clinic (superusers)."""
    if not user.is_authenticated or not user.is_active:
        return []
    if user.is_superuser:
        return None
    return [user.clinic_id] if user.clinic_id else []


def scope_to_user(queryset: Q, *, user) -> Q:
    """Narrow a queryset whose model offers ``for_clinics`` to the user's clinics."""
    clinic_ids = visible_clinic_ids(user=user)
    if clinic_ids is None:
        return queryset
    return queryset.for_clinics(clinic_ids)


def user_list_manageable(*, user) -> QuerySet:
    """The accounts a user may see and manage in the admin: all for a superuser; for a clinic admin the clinic's
    own accounts, never a superuser's (a superuser placed in a clinic stays out of its admin's reach) nor a service
    account (a DICOM sender's: it changes with its sender, and a password given to it would impersonate the machine)."""
    from fetalsite.accounts.models import User

    clinic_ids = visible_clinic_ids(user=user)
    if clinic_ids is None:
        return User.objects.all()
    return User.objects.filter(clinic_id__in=clinic_ids, is_superuser=False, is_service_account=False)


def lockout_list(*, user) -> QuerySet:
    """django-axes' failed-login records (a lock-out is one with the failure limit reached) that a user may see
    and clear: all for a superuser; for a clinic admin only those of the accounts it manages
    (``user_list_manageable``). axes records the username typed, so records are matched by username."""
    from axes.models import AccessAttempt

    attempts = AccessAttempt.objects.all()
    if visible_clinic_ids(user=user) is None:
        return attempts
    return attempts.filter(username__in=user_list_manageable(user=user).values("username"))
