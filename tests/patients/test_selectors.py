import pytest
from django.http import Http404

from patients import selectors
from tests.factories import StudyFactory, UserFactory


class TestClinicScoping:
    def test_lists_only_the_users_clinic(self, study, south_sonographer):
        StudyFactory(patient__clinic=south_sonographer.clinic)
        assert list(selectors.study_list(user=study.created_by)) == [study]
        assert study not in selectors.study_list(user=south_sonographer)
        assert study.patient not in selectors.patient_list(user=south_sonographer)

    def test_another_clinics_record_is_a_404_like_a_missing_one(self, study, south_sonographer):
        with pytest.raises(Http404):
            selectors.study_get(user=south_sonographer, study_id=study.id)
        with pytest.raises(Http404):
            selectors.patient_get(user=south_sonographer, patient_id=study.patient_id)
        with pytest.raises(Http404):
            selectors.study_get(user=south_sonographer, study_id=999_999)

    def test_superuser_sees_every_clinic(self, study, south_sonographer):
        admin = UserFactory(username="root", clinic=None, is_superuser=True, is_staff=True, role=None)
        other = StudyFactory(patient__clinic=south_sonographer.clinic)
        assert set(selectors.study_list(user=admin)) == {study, other}

    def test_search_matches_mrn_and_names(self, study):
        user = study.created_by
        assert list(selectors.patient_list(user=user, search=study.patient.mrn)) == [study.patient]
        assert list(selectors.patient_list(user=user, search=study.patient.family_name[:5])) == [study.patient]
        assert list(selectors.patient_list(user=user, search="nobody-by-this-name")) == []
