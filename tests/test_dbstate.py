"""database_snapshot, which the role matrices trust to say a refused request wrote nothing: it sees a change
of one column, an insert, a delete and a many-to-many change, and reading is no change."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from fetalsite.accounts.roles import Role
from patients.models import Patient
from tests.dbstate import database_snapshot
from tests.factories import PatientFactory


@pytest.mark.django_db
def test_the_snapshot_sees_every_kind_of_write_and_only_writes(sonographer):
    patient = PatientFactory(clinic=sonographer.clinic, created_by=sonographer)
    before = database_snapshot()
    assert Patient.objects.get().given_name == patient.given_name
    assert database_snapshot() == before  # reading changes nothing

    Patient.objects.filter(pk=patient.pk).update(given_name="Changed")  # a plain UPDATE: no history row
    assert database_snapshot() != before
    Patient.objects.filter(pk=patient.pk).update(given_name=patient.given_name)
    assert database_snapshot() == before  # the same rows again: the same snapshot

    clinician = Group.objects.get(name=Role.CLINICIAN)
    sonographer.groups.add(clinician)  # only the many-to-many table changes
    assert database_snapshot() != before
    sonographer.groups.remove(clinician)
    assert database_snapshot() == before

    Patient.objects.filter(pk=patient.pk)._raw_delete(Patient.objects.db)  # a plain DELETE: no history row
    assert database_snapshot() != before
    PatientFactory(clinic=sonographer.clinic, created_by=sonographer)  # an insert (and its history row)
    assert database_snapshot() != before
