"""One factory per model; SubFactories keep every record in one clinic."""

import datetime

import factory
from django.contrib.auth.models import Group

from fetalsite.accounts.models import Clinic, User
from fetalsite.accounts.roles import Role
from fetalsite.core.text import fold_for_search
from patients.models import Patient, Study


class ClinicFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Clinic
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Clinic {n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    clinic = factory.SubFactory(ClinicFactory)
    password = factory.PostGenerationMethodCall("set_password", "correct-horse-battery")
    role = Role.SONOGRAPHER

    @classmethod
    def _create(cls, model_class, *args, role=None, **kwargs):
        user = super()._create(model_class, *args, **kwargs)
        if role:
            user.groups.add(Group.objects.get(name=role))
        return user

    @factory.post_generation
    def save_password(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class PatientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Patient

    clinic = factory.SubFactory(ClinicFactory)
    mrn = factory.Sequence(lambda n: f"MRN{n:05d}")
    given_name = "Ada"
    family_name = factory.Sequence(lambda n: f"Lovelace{n}")
    birth_date = datetime.date(1990, 1, 1)
    created_by = factory.SubFactory(UserFactory, clinic=factory.SelfAttribute("..clinic"))
    # What the services store (patients.services._fold_search_text), so search finds factory-made patients.
    search_text = factory.LazyAttribute(lambda p: fold_for_search(f"{p.given_name} {p.family_name} {p.mrn}"))


class StudyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Study

    patient = factory.SubFactory(PatientFactory)
    exam_date = datetime.date(2026, 1, 15)
    gestational_age_weeks = 20
    gestational_age_days = 3
    created_by = factory.SubFactory(UserFactory, clinic=factory.SelfAttribute("..patient.clinic"))
