"""Writes of clinics and users."""

from __future__ import annotations

import logging

from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db import transaction

from fetalsite.accounts.models import Clinic, User
from fetalsite.accounts.roles import Role, require_permission
from fetalsite.accounts.selectors import lockout_list

logger = logging.getLogger(__name__)


class ServiceAccountNotEditable(PermissionDenied):
    """A change to a service account from anywhere but the service that owns it (the admin answers 403)."""


@transaction.atomic
def clinic_get_or_create(*, name: str) -> Clinic:
    clinic, _ = Clinic.objects.get_or_create(name=name)
    return clinic


@transaction.atomic
def user_create_or_update(
    *, username: str, password: str, clinic: Clinic | None, role: Role | None = None, is_superuser: bool = False
) -> tuple[User, bool]:
    """Create the user, or bring an existing one back to the given clinic, role and password."""
    user = User.objects.filter(username=username).first()
    if user is not None and user.is_service_account:
        raise ServiceAccountNotEditable(f"{username} is a service account; nobody logs in as it.")
    created = user is None
    if created:
        user = User(username=username)
    user.clinic = clinic
    user.is_superuser = is_superuser
    user.is_staff = is_superuser or role == Role.CLINIC_ADMIN  # the Django admin is where clinic admins work
    user.is_active = True
    user.set_password(password)
    user.full_clean(exclude=["password"])
    user.save()
    if role is not None:
        user.groups.set([Group.objects.get(name=role.value)])
    return user, created


def _check_clinic_admin_may_save(*, acting_user: User, user: User, stored: User | None, roles: list[str]) -> None:
    """A clinic admin manages their own clinic's accounts with the roles it has, and nothing more."""
    perm = "accounts.change_user" if stored else "accounts.add_user"
    require_permission(acting_user, perm, action="manage user accounts")
    if not (acting_user.is_staff and acting_user.clinic_id):
        raise PermissionDenied("Only a clinic's admin manages its user accounts.")
    if stored is not None and (stored.clinic_id != acting_user.clinic_id or stored.is_superuser):
        raise PermissionDenied("This account is not one of your clinic's.")
    unknown = sorted(set(roles) - set(Role.values))
    if unknown:
        raise PermissionDenied(f"These are not roles you can grant: {', '.join(unknown)}.")
    if stored is not None and stored.pk == acting_user.pk:
        own_roles = sorted(stored.groups.values_list("name", flat=True))
        if sorted(roles) != own_roles or not user.is_active:
            raise PermissionDenied("You cannot change your own role or deactivate yourself; ask another admin.")


@transaction.atomic
def user_save_by_admin(*, user: User, roles: list[str] | None, acting_user: User) -> User:
    """Save an account edited in the Django admin (new or changed), with its roles, as ``acting_user``.

    A superuser may set anything. A clinic admin's accounts stay in their clinic, never become superusers, get
    staff status exactly when they hold the clinic admin role, and keep no permissions outside their roles."""
    stored = User.objects.select_for_update().filter(pk=user.pk).first() if user.pk else None
    if stored is not None and stored.is_service_account:
        # Its program's service owns it (a DICOM sender's follows the sender); a password set here would let
        # whoever knows it act as the machine.
        raise ServiceAccountNotEditable(
            f"{stored} is a service account; change it through what it acts for (e.g. its DICOM sender)."
        )
    if not acting_user.is_superuser:
        if roles is None:
            roles = sorted(stored.groups.values_list("name", flat=True)) if stored else []
        _check_clinic_admin_may_save(acting_user=acting_user, user=user, stored=stored, roles=roles)
        user.clinic_id = acting_user.clinic_id
        user.is_superuser = False
        user.is_staff = Role.CLINIC_ADMIN.value in roles
    user._history_user = acting_user
    user.full_clean(exclude=["password"])
    user.save()
    if roles is not None:
        user.groups.set(Group.objects.filter(name__in=roles))
    if not acting_user.is_superuser:
        user.user_permissions.clear()
    logger.info("Account %s saved in the admin by %s", user, acting_user)
    return user


@transaction.atomic
def service_account_create(*, username_base: str, clinic: Clinic, role: Role, label: str, created_by: User) -> User:
    """An account a program acts as (a DICOM sender): in ``clinic`` with ``role``, so the services' permission
    checks and history apply to it as to a person, but with no usable password, so nobody logs in as it.
    The caller's service has checked that ``created_by`` may create it."""
    cleaned = "".join(char if char.isalnum() or char in "._-" else "_" for char in username_base)[:120]
    username, suffix = cleaned, 1
    while User.objects.filter(username=username).exists():
        suffix += 1
        username = f"{cleaned}-{suffix}"
    user = User(username=username, clinic=clinic, last_name=label[:150], is_service_account=True)
    user.set_unusable_password()
    user._history_user = created_by
    user.full_clean(exclude=["password"])
    user.save()
    user.groups.set([Group.objects.get(name=role.value)])
    logger.info("Service account %s created by %s", user, created_by)
    return user


@transaction.atomic
def service_account_set_active(*, user: User, is_active: bool, changed_by: User) -> User:
    """Activate or deactivate a service account with what it acts for (its API tokens go with deactivation,
    ``signals.py``). The caller's service has checked that ``changed_by`` may change that owner."""
    user = User.objects.select_for_update().get(pk=user.pk)
    if not user.is_service_account:
        raise ServiceAccountNotEditable(f"{user} is a person's account, not a service account.")
    if user.is_active != is_active:
        user.is_active = is_active
        user._history_user = changed_by
        user.save(update_fields=["is_active"])
        logger.info("Service account %s %s by %s", user, "activated" if is_active else "deactivated", changed_by)
    return user


@transaction.atomic
def lockout_clear(*, attempts: list, cleared_by: User) -> int:
    """Clear lock-outs: delete django-axes' failed-login records, so each account may log in again at once.

    A clinic admin clears only those of its own clinic's accounts (``lockout_list``'s rule); any other record
    among ``attempts`` refuses the whole clear. Returns how many records were cleared."""
    require_permission(cleared_by, "axes.delete_accessattempt", action="clear lock-outs")
    ids = {attempt.pk for attempt in attempts}
    allowed = lockout_list(user=cleared_by).filter(pk__in=ids)
    usernames = sorted(set(allowed.values_list("username", flat=True)))
    if allowed.count() != len(ids):
        raise PermissionDenied("Your role does not allow you to clear these lock-outs.")
    allowed.delete()
    logger.info("Lock-outs cleared by %s for %s", cleared_by.username, ", ".join(usernames))
    return len(ids)
