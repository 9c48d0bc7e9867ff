"""Writes of clinics and users."""

from __future__ import annotations

from django.contrib.auth.models import Group
from django.db import transaction

from fetalsite.accounts.models import Clinic, User
from fetalsite.accounts.roles import Role


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
