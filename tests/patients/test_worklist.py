"""The worklist (issue 19, item 8): an exam date range with Today and This week, sorting by any column with
aria-sort, the operator column, review-state counts, filters kept in the URL and bad values named, not a 500."""

from __future__ import annotations

import datetime
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import reverse
from django.utils import timezone

from classifier.models import ClassificationJob
from patients import services
from tests.factories import StudyFactory, UserFactory
from tests.images import png_bytes
from tests.patients.test_views import classify, model_version  # noqa: F401 (a fixture)

TODAY = timezone.localdate()


def _upload(study, user, seed: int):
    return services.image_upload(study=study, data=png_bytes(seed=seed), filename="scan.png", uploaded_by=user).image


@pytest.fixture
def logged_in(client, sonographer):
    client.force_login(sonographer)
    return client


def ids(client, **query) -> list[int]:
    return [study.id for study in client.get(reverse("home"), query).context["studies"]]


class TestDateRange:
    def test_from_and_to_are_inclusive_and_shortcuts_set_them(self, logged_in, sonographer):
        days = [TODAY, TODAY - datetime.timedelta(days=1), TODAY - datetime.timedelta(days=30)]
        today, yesterday, old = (StudyFactory(patient__clinic=sonographer.clinic, exam_date=day) for day in days)

        assert ids(logged_in, date_from=yesterday.exam_date, date_to=TODAY) == [today.id, yesterday.id]
        assert ids(logged_in, date_to=old.exam_date) == [old.id]
        response = logged_in.get(reverse("home"), {"q": "x", "sort": "mrn"})
        shortcuts = {s["label"]: parse_qs(urlsplit(s["url"]).query) for s in response.context["shortcuts"]}
        assert shortcuts["Today"] == {"q": ["x"], "sort": ["mrn"], "date_from": [str(TODAY)], "date_to": [str(TODAY)]}
        monday = TODAY - datetime.timedelta(days=TODAY.weekday())
        assert shortcuts["This week"]["date_from"] == [str(monday)]
        assert shortcuts["This week"]["date_to"] == [str(monday + datetime.timedelta(days=6))]
        assert ids(logged_in, **{k: v[0] for k, v in shortcuts["Today"].items() if k != "q"}) == [today.id]


class TestSort:
    def test_every_column_sorts_both_ways_with_aria_sort_and_links_keep_the_filters(self, logged_in, sonographer):
        first = StudyFactory(patient__clinic=sonographer.clinic, patient__family_name="Abel", exam_date=TODAY)
        second = StudyFactory(
            patient__clinic=sonographer.clinic, patient__family_name="Zorn", exam_date=TODAY - datetime.timedelta(1)
        )
        _upload(second, sonographer, seed=1)

        assert ids(logged_in, sort="patient") == [first.id, second.id]
        assert ids(logged_in, sort="-patient") == [second.id, first.id]
        assert ids(logged_in, sort="images") == [first.id, second.id]
        assert ids(logged_in, sort="-images") == [second.id, first.id]
        assert ids(logged_in) == [first.id, second.id]  # newest exam first
        response = logged_in.get(reverse("home"), {"sort": "-images", "status": "OPEN"})
        html = response.content.decode()
        assert re.search(
            r'<th scope="col" class="num" aria-sort="descending"><a href="\?[^"]*" class="sort">Images', html
        )
        assert html.count("aria-sort=") == 1
        columns = {c["name"]: parse_qs(urlsplit(c["url"]).query) for c in response.context["columns"]}
        assert columns["images"] == {"sort": ["images"], "status": ["OPEN"]}
        assert columns["operator"] == {"sort": ["operator"], "status": ["OPEN"]}
        for name in columns:  # every column can be sorted by, both ways
            for sort in (name, f"-{name}"):
                assert logged_in.get(reverse("home"), {"sort": sort}).context["problems"] == []


class TestOperatorAndCounts:
    def test_operators_are_the_uploaders_else_who_opened_it(self, logged_in, sonographer, clinician):
        uploaded = StudyFactory(patient__clinic=sonographer.clinic, created_by=clinician)
        _upload(uploaded, sonographer, seed=1)
        _upload(uploaded, clinician, seed=2)
        empty = StudyFactory(patient__clinic=sonographer.clinic, created_by=clinician)

        rows = {s.id: s for s in logged_in.get(reverse("home")).context["studies"]}

        assert rows[uploaded.id].operators == sorted([sonographer.username, clinician.username])
        assert rows[empty.id].operators == []
        assert f"{clinician.username} (opened)" in logged_in.get(reverse("home")).content.decode()

    def test_counts_awaiting_unreviewed_and_pending(self, logged_in, sonographer, clinician, model_version):  # noqa: F811
        study = StudyFactory(patient__clinic=sonographer.clinic, created_by=sonographer)
        flagged = classify(_upload(study, sonographer, seed=1), confidence=0.3)
        classify(_upload(study, sonographer, seed=2), confidence=0.9)
        confirmed = classify(_upload(study, sonographer, seed=3), confidence=0.9)
        _upload(study, sonographer, seed=4)  # queued: pending
        excluded = _upload(study, sonographer, seed=5)
        from classifier.services import prediction_review

        prediction_review(prediction=confirmed, reviewed_by=clinician, label=confirmed.label)
        services.image_exclude(image=excluded, excluded_by=clinician, reason="test_image")

        row = logged_in.get(reverse("home")).context["studies"][0]

        assert (row.needs_review_count, row.unreviewed_count, row.pending_count) == (1, 2, 1)
        assert flagged.needs_review
        assert ids(logged_in, sort="-unreviewed")[0] == study.id


class TestBadParameters:
    @pytest.mark.parametrize(
        ("query", "words"),
        [
            ({"date_from": "yesterday"}, "Exam from: Enter a valid date."),
            ({"date_from": "2025-02-30"}, "Exam from: Enter a valid date."),
            ({"sort": "salary"}, "Sort: Select a valid choice."),
            ({"date_from": "2025-05-02", "date_to": "2025-05-01"}, "Exam to: The end of the date range is before"),
            ({"status": "bogus"}, "Status: Select a valid choice."),
        ],
    )
    def test_are_named_on_the_page_and_the_rest_still_filters(self, logged_in, sonographer, query, words):
        study = StudyFactory(patient__clinic=sonographer.clinic, patient__mrn="KEEP-1")
        StudyFactory(patient__clinic=sonographer.clinic, patient__mrn="OTHER-2")

        response = logged_in.get(reverse("home"), {**query, "q": "keep"})

        assert response.status_code == 200
        assert any(problem.startswith(words) for problem in response.context["problems"]), response.context["problems"]
        assert 'role="alert"' in response.content.decode()
        assert [s.id for s in response.context["studies"]] == [study.id]


class TestQueries:
    def test_a_full_page_costs_a_bounded_number_of_queries(self, logged_in, sonographer, django_assert_max_num_queries):
        others = UserFactory.create_batch(3, clinic=sonographer.clinic)
        for n in range(30):
            study = StudyFactory(patient__clinic=sonographer.clinic, created_by=sonographer)
            _upload(study, others[n % 3], seed=n)
        assert ClassificationJob.objects.count() == 30

        # session, user, role, count, page, operators, clinic, and the access log entry (7 with savepoints)
        with django_assert_max_num_queries(15):
            response = logged_in.get(reverse("home"), {"sort": "-operator", "date_to": str(TODAY)})

        assert len(response.context["studies"]) == 25
