"""Demo clinics and users; safe to run again."""

import secrets

from django.core.management.base import BaseCommand

from fetalsite.accounts.roles import Role
from fetalsite.accounts.services import clinic_get_or_create, user_create_or_update

DEMO_USERS = [
    ("sono_north", "North Clinic", Role.SONOGRAPHER),
    ("clin_north", "North Clinic", Role.CLINICIAN),
    ("api_north", "North Clinic", Role.INTEGRATOR),
    ("sono_south", "South Clinic", Role.SONOGRAPHER),
    ("clin_south", "South Clinic", Role.CLINICIAN),
    ("admin_north", "North Clinic", Role.CLINIC_ADMIN),
]


class Command(BaseCommand):
    help = "Create two demo clinics, their users and the superuser 'admin'."

    def add_arguments(self, parser):
        parser.add_argument("--password", help="Password for every demo user (default: a random one, printed once).")

    def handle(self, *args, password=None, **options):
        password = password or secrets.token_urlsafe(12)
        for username, clinic_name, role in DEMO_USERS:
            clinic = clinic_get_or_create(name=clinic_name)
            user_create_or_update(username=username, password=password, clinic=clinic, role=role)
        user_create_or_update(username="admin", password=password, clinic=None, is_superuser=True)
        self.stdout.write("Demo logins (every user has the same password):")
        for username, clinic_name, role in DEMO_USERS:
            where = " (Django admin at /admin/)" if role == Role.CLINIC_ADMIN else ""
            self.stdout.write(f"  {username:<11} {role.label:<12} {clinic_name}{where}")
        self.stdout.write(f"  {'admin':<11} {'superuser':<12} (Django admin at /admin/)")
        self.stdout.write(f"Password: {password}")
