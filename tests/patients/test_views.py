"""The server-rendered pages and the HTML partials the study page's script gets, through Django's test client."""

from __future__ import annotations

import html as html_lib
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from classifier import services as classifier_services
from classifier.ml.inference import ClassifierResult
from classifier.models import ModelVersion
from patients import services
from patients.models import Patient
from tests.factories import PatientFactory, StudyFactory, UserFactory
from tests.images import image_bytes, png_bytes


@pytest.fixture
def model_version(db):
    # A registry row is enough here: these tests save predictions directly, without TensorFlow.
    return ModelVersion.objects.create(
        name="tiny",
        version="1",
        file_path="tiny.keras",
        sha256="0" * 64,
        class_labels=["fetal_brain", "fetal_thorax", "fetal_abdomen", "fetal_femur"],
        input_size=32,
        review_threshold=0.5,
        # Shaped like classifier/ml/card.py writes it.
        metrics={
            "test": {
                "accuracy": 0.912,
                "macro_f1": 0.9,
                "n": 120,
                "ci": {"accuracy": [0.85, 0.95]},
                "per_class": {"fetal_femur": {"precision": 0.881, "recall": 0.8, "f1": 0.84, "support": 30}},
            }
        },
        card={
            "intended_use": "Suggest the fetal plane.",
            "limits": ["Not for anomaly detection."],
            "data": {"counts": {"train": {"african": {"fetal_brain": 40}}}, "citations": ["Burgos-Artizzu 2020"]},
        },
        is_active=True,
    )


def upload(study, user, *, seed=0, name="scan.png"):
    return services.image_upload(study=study, data=png_bytes(seed=seed), filename=name, uploaded_by=user).image


def classify(image, *, label="fetal_brain", confidence=0.8, similarity=None):
    job = image.jobs.get()
    classifier_services.job_start(job_id=job.id)
    rest = (1 - confidence) / 3
    probabilities = {plane: rest for plane in ["fetal_brain", "fetal_thorax", "fetal_abdomen", "fetal_femur"]}
    probabilities[label] = confidence
    result = ClassifierResult(
        label=label,
        confidence=confidence,
        probabilities=probabilities,
        needs_review=confidence < 0.5,
        inference_ms=3,
        similarity=similarity,
    )
    classifier_services.prediction_save(job_id=job.id, result=result, heatmap_png=png_bytes(seed=99))
    return job.prediction if hasattr(job, "prediction") else image.jobs.get().prediction


# What the study page's script sends (patients.page_actions): the answer is an HTML partial.
PARTIAL = {"HTTP_X_REQUESTED_WITH": "fetch"}


def refusal(response) -> tuple[str, str]:
    """(code, message) of a patients/_error.html partial."""
    assert response["Content-Type"].startswith("text/html")
    match = re.search(r'data-code="([a-z_]+)">(.*?)</p>', response.content.decode(), re.S)
    assert match, response.content
    return match.group(1), html_lib.unescape(match.group(2))


def card_attributes(html: str, name: str) -> list[str]:
    """One attribute of every image card in a partial, in order."""
    return re.findall(rf'<article class="card image-card[^"]*"[^>]*\s{name}="([^"]*)"', html)


@pytest.fixture
def client_for(client):
    def log_in(user):
        client.force_login(user)
        return client

    return log_in


class TestWorklist:
    def test_lists_the_clinics_studies_with_image_counts(self, client_for, study, sonographer, model_version):
        classify(upload(study, sonographer, seed=1), confidence=0.9)
        classify(upload(study, sonographer, seed=2), confidence=0.3)
        upload(study, sonographer, seed=3)
        StudyFactory(patient__family_name="Southerner", patient__clinic__name="South Clinic")

        response = client_for(sonographer).get(reverse("home"))

        assert response.status_code == 200
        row = response.context["studies"][0]
        assert (row.image_count, row.classified_count, row.needs_review_count) == (3, 2, 1)
        assert [s.id for s in response.context["studies"]] == [study.id]
        assert b"Southerner" not in response.content

    def test_searches_by_mrn_and_filters_by_status_and_needs_review(self, client_for, sonographer, model_version):
        flagged = StudyFactory(patient__clinic=sonographer.clinic, patient__mrn="FLAG-1", created_by=sonographer)
        calm = StudyFactory(patient__clinic=sonographer.clinic, patient__mrn="CALM-2", created_by=sonographer)
        classify(upload(flagged, sonographer), confidence=0.3)
        services.study_sign_off(
            study=calm, signed_by=UserFactory(clinic=sonographer.clinic, role="clinician"), acknowledged=True
        )
        client = client_for(sonographer)

        def ids(**query):
            return [s.id for s in client.get(reverse("home"), query).context["studies"]]

        assert ids(q="calm") == [calm.id]
        assert ids(status="COMPLETED") == [calm.id]
        assert ids(needs_review="on") == [flagged.id]
        assert set(ids(status="bogus")) == {flagged.id, calm.id}

    def test_paginates_25_a_page(self, client_for, sonographer):
        patient = PatientFactory(clinic=sonographer.clinic)
        StudyFactory.create_batch(27, patient=patient, created_by=sonographer)
        client = client_for(sonographer)

        first = client.get(reverse("home"), {"q": patient.mrn})
        second = client.get(reverse("home"), {"q": patient.mrn, "page": 2})

        assert len(first.context["studies"]) == 25
        assert len(second.context["studies"]) == 2
        assert b"page=2" in first.content and b"q=" in first.content

    def test_integrators_stay_off_the_pages_and_strangers_log_in(self, client, client_for, integrator):
        assert client.get(reverse("home")).status_code == 302
        assert client_for(integrator).get(reverse("home")).status_code == 403


class TestPatientPages:
    def test_create_shows_a_duplicate_mrn_next_to_the_field_with_a_link(self, client_for, sonographer):
        existing = PatientFactory(clinic=sonographer.clinic, mrn="M-1")
        data = {"mrn": "M-1", "given_name": "Eva", "family_name": "Ng", "birth_date": ""}

        response = client_for(sonographer).post(reverse("patient-create"), data)

        assert response.status_code == 200
        message = response.context["form"].errors["mrn"][0]
        assert message.startswith("A patient with this MRN is already registered in your clinic.")
        assert b'aria-invalid="true"' in response.content
        assert f'<a href="/patients/{existing.id}/">Open that patient</a>'.encode() in response.content

    def test_edit_to_a_taken_mrn_shows_the_same_message(self, client_for, sonographer):
        existing = PatientFactory(clinic=sonographer.clinic, mrn="M-1")
        patient = PatientFactory(clinic=sonographer.clinic, mrn="M-3")
        data = {"mrn": "M-1", "given_name": "Eva", "family_name": "Ng", "birth_date": ""}

        response = client_for(sonographer).post(reverse("patient-edit", args=[patient.id]), data)

        assert response.status_code == 200
        assert f'<a href="/patients/{existing.id}/">Open that patient</a>'.encode() in response.content
        patient.refresh_from_db()
        assert patient.mrn == "M-3"

    def test_edit_saves_through_the_service_and_keeps_history(self, client_for, sonographer):
        patient = PatientFactory(clinic=sonographer.clinic, mrn="M-2", given_name="Eva")
        client = client_for(sonographer)
        assert client.get(reverse("patient-edit", args=[patient.id])).context["form"].initial["mrn"] == "M-2"

        data = {"mrn": "M-2", "given_name": "Evelyn", "family_name": patient.family_name, "birth_date": "1991-02-03"}
        response = client.post(reverse("patient-edit", args=[patient.id]), data)

        assert response.status_code == 302
        patient.refresh_from_db()
        assert (patient.given_name, str(patient.birth_date)) == ("Evelyn", "1991-02-03")
        assert patient.history.first().history_user == sonographer

    def test_future_birth_date_is_refused_on_the_field(self, client_for, sonographer):
        patient = PatientFactory(clinic=sonographer.clinic)
        data = {"mrn": patient.mrn, "given_name": "A", "family_name": "B", "birth_date": "2999-01-01"}

        response = client_for(sonographer).post(reverse("patient-edit", args=[patient.id]), data)

        assert response.context["form"].errors["birth_date"] == ["The date of birth cannot be in the future."]

    def test_another_clinics_patient_is_a_404(self, client_for, south_sonographer, study):
        client = client_for(south_sonographer)
        assert client.get(reverse("patient-detail", args=[study.patient_id])).status_code == 404
        assert client.get(reverse("patient-edit", args=[study.patient_id])).status_code == 404
        response = client.post(
            reverse("patient-edit", args=[study.patient_id]), {"mrn": "X", "given_name": "X", "family_name": "X"}
        )
        assert response.status_code == 404
        assert Patient.objects.get(id=study.patient_id).mrn != "X"


class TestStudyPage:
    def test_cards_show_label_confidence_bars_badge_and_heatmap_toggle(
        self, client_for, study, sonographer, model_version
    ):
        classify(upload(study, sonographer, name="brain.png"), label="fetal_brain", confidence=0.45)

        response = client_for(sonographer).get(reverse("study-detail", args=[study.id]))

        html = response.content.decode()
        assert response.status_code == 200
        assert "brain.png" in html and "Fetal brain" in html and "45%" in html
        assert "Needs review" in html
        assert html.count('class="prob-name"') == 4
        assert 'class="heatmap-toggle"' in html
        assert 'id="dropzone"' in html and 'name="csrfmiddlewaretoken"' in html
        # A sonographer sees no review form.
        assert 'class="review"' not in html

    def test_an_image_unlike_the_training_images_says_so(self, client_for, study, sonographer, model_version):
        model_version.novelty_threshold = 0.6
        model_version.save()
        classify(upload(study, sonographer, seed=1, name="odd.png"), confidence=0.95, similarity=0.4)
        classify(upload(study, sonographer, seed=2, name="usual.png"), confidence=0.95, similarity=0.9)

        html = client_for(sonographer).get(reverse("study-detail", args=[study.id])).content.decode()

        cards = {name: card for card in html.split("<article")[1:] for name in ("odd.png", "usual.png") if name in card}
        assert 'class="novelty-note"' in cards["odd.png"]
        assert "Unlike the images the model was trained on" in cards["odd.png"]
        assert 'class="novelty-note"' not in cards["usual.png"]

    def test_summary_strip_says_which_planes_are_there(self, client_for, study, sonographer, clinician, model_version):
        classify(upload(study, sonographer, seed=1), label="fetal_brain")
        prediction = classify(upload(study, sonographer, seed=2), label="fetal_thorax")
        classifier_services.prediction_review(prediction=prediction, label="fetal_femur", reviewed_by=clinician)

        response = client_for(sonographer).get(reverse("study-detail", args=[study.id]))

        states = {plane.label: plane.state for plane in response.context["summary"].planes}
        assert states == {
            "fetal_brain": "suggested",
            "fetal_thorax": "missing",
            "fetal_abdomen": "missing",
            "fetal_femur": "confirmed",
        }

    def test_another_clinics_study_and_its_cards_are_404(self, client_for, study, south_sonographer):
        client = client_for(south_sonographer)
        assert client.get(reverse("study-detail", args=[study.id])).status_code == 404
        assert client.get(reverse("study-images", args=[study.id])).status_code == 404
        response = client.get(reverse("study-images", args=[study.id]), **PARTIAL)
        assert response.status_code == 404
        assert refusal(response) == ("not_found", "Not found.")


class TestStudyImagesFragment:
    def test_gives_every_card_with_its_version_and_the_summary(self, client_for, study, sonographer, model_version):
        client = client_for(sonographer)
        url = reverse("study-images", args=[study.id])
        classify(upload(study, sonographer, seed=1))
        client.get(url, **PARTIAL)
        with CaptureQueriesContext(connection) as one_image:
            client.get(url, **PARTIAL)
        upload(study, sonographer, seed=2)
        upload(study, sonographer, seed=3)

        with CaptureQueriesContext(connection) as three_images:
            response = client.get(url, **PARTIAL)

        assert len(three_images) == len(one_image), "queries grow with the number of images"
        html = response.content.decode()
        assert response["Content-Type"].startswith("text/html")
        assert card_attributes(html, "data-status") == ["SUCCEEDED", "QUEUED", "QUEUED"]
        cards, summary = html.split('data-part="summary"')
        assert '<span class="label">Fetal brain</span>' in cards
        versions = card_attributes(html, "data-version")
        assert len(set(versions)) == 3 and all(versions)
        assert 'data-plane="fetal_brain" data-state="suggested"' in summary

    def test_a_cards_version_changes_when_it_is_reviewed(
        self, client_for, study, sonographer, clinician, model_version
    ):
        prediction = classify(upload(study, sonographer))
        client = client_for(sonographer)
        url = reverse("study-images", args=[study.id])
        before = card_attributes(client.get(url, **PARTIAL).content.decode(), "data-version")

        classifier_services.prediction_review(prediction=prediction, label="fetal_femur", reviewed_by=clinician)

        after = card_attributes(client.get(url, **PARTIAL).content.decode(), "data-version")
        assert len(before) == len(after) == 1 and before != after


class TestImagePreview:
    def test_a_tiff_is_shown_as_png_and_a_png_as_itself(self, client_for, study, sonographer):
        tiff = services.image_upload(
            study=study, data=image_bytes("TIFF"), filename="scan.tif", uploaded_by=sonographer
        ).image
        png = upload(study, sonographer)
        client = client_for(sonographer)

        tiff_response = client.get(reverse("image-preview", args=[tiff.id]))
        png_response = client.get(reverse("image-preview", args=[png.id]))

        assert tiff_response["Content-Type"] == "image/png"
        assert b"".join(tiff_response.streaming_content) == tiff.file.read()  # the display PNG made at upload
        assert png_response["Content-Type"] == "image/png"
        assert b"".join(png_response.streaming_content) == png.file.read()


class TestRetry:
    def test_a_failed_job_is_queued_again_and_the_card_comes_back(self, client_for, study, sonographer, model_version):
        image = upload(study, sonographer)
        classifier_services.job_mark_failed(job_id=image.jobs.get().id, reason="RuntimeError: boom")
        client = client_for(sonographer)
        assert b"RuntimeError: boom" in client.get(reverse("study-detail", args=[study.id])).content

        response = client.post(reverse("image-retry", args=[image.id]), **PARTIAL)

        assert response.status_code == 200
        assert card_attributes(response.content.decode(), "data-status") == ["QUEUED"]

    def test_a_job_that_did_not_fail_is_refused_in_the_apis_words(self, client_for, study, sonographer, model_version):
        image = upload(study, sonographer)
        client = client_for(sonographer)

        partial = client.post(reverse("image-retry", args=[image.id]), **PARTIAL)
        plain = client.post(reverse("image-retry", args=[image.id]), follow=True)

        assert partial.status_code == 409
        code, message = refusal(partial)
        assert code == "job_not_retryable"
        assert message in plain.content.decode()
        assert image.jobs.get().attempts == 0


class TestUpload:
    def test_script_upload_answers_202_with_the_queued_card(self, client_for, study, sonographer, model_version):
        file = SimpleUploadedFile("a.png", png_bytes(seed=5))

        response = client_for(sonographer).post(reverse("study-upload", args=[study.id]), {"file": file}, **PARTIAL)

        assert response.status_code == 202
        image = study.images.get()
        assert card_attributes(response.content.decode(), "id") == [f"image-{image.id}"]
        assert card_attributes(response.content.decode(), "data-status") == ["QUEUED"]

    def test_the_same_bytes_again_answer_200_with_the_same_card(self, client_for, study, sonographer, model_version):
        client = client_for(sonographer)
        url = reverse("study-upload", args=[study.id])
        client.post(url, {"file": SimpleUploadedFile("a.png", png_bytes(seed=5))}, **PARTIAL)

        again = client.post(url, {"file": SimpleUploadedFile("b.png", png_bytes(seed=5))}, **PARTIAL)

        assert again.status_code == 200
        assert card_attributes(again.content.decode(), "id") == [f"image-{study.images.get().id}"]

    def test_page_actions_never_answer_json(self, client_for, study, sonographer, model_version):
        file = SimpleUploadedFile("a.png", png_bytes(seed=5))

        response = client_for(sonographer).post(
            reverse("study-upload", args=[study.id]), {"file": file}, HTTP_ACCEPT="application/json", **PARTIAL
        )

        assert response.status_code == 202
        assert response["Content-Type"].startswith("text/html")
        assert "X-Requested-With" in response["Vary"]

    def test_a_text_file_gets_the_apis_reason_and_leaves_nothing(self, client_for, study, sonographer, api_client):
        def post_notes(post, url, **extra):
            return post(url, {"file": SimpleUploadedFile("notes.txt", b"not an image")}, **extra)

        page = post_notes(client_for(sonographer).post, reverse("study-upload", args=[study.id]), **PARTIAL)
        api = post_notes(api_client.post, f"/api/v1/studies/{study.id}/images/", format="multipart")

        assert page.status_code == api.status_code == 400
        assert refusal(page) == (api.json()["code"], api.json()["detail"])
        assert refusal(page) == ("invalid", "The file is not an image this server can read.")
        assert study.images.count() == 0

    def test_a_plain_form_gets_a_flash_message_and_its_page_back(self, client_for, study, sonographer):
        file = SimpleUploadedFile("notes.txt", b"not an image")

        response = client_for(sonographer).post(reverse("study-upload", args=[study.id]), {"file": file}, follow=True)

        assert response.redirect_chain == [(reverse("study-detail", args=[study.id]), 302)]
        assert "Upload refused: The file is not an image this server can read." in response.content.decode()
        assert study.images.count() == 0

    def test_csrf_is_enforced(self, study, sonographer, tmp_path):
        from django.test import Client

        client = Client(enforce_csrf_checks=True)
        client.force_login(sonographer)
        path = tmp_path / "a.png"
        path.write_bytes(png_bytes())
        with path.open("rb") as handle:
            response = client.post(reverse("study-upload", args=[study.id]), {"file": handle})
        assert response.status_code == 403


class TestReview:
    def test_clinician_corrects_and_the_card_keeps_the_models_answer(
        self, client_for, study, sonographer, clinician, model_version
    ):
        image = upload(study, sonographer)
        classify(image, label="fetal_brain", confidence=0.7)

        response = client_for(clinician).post(
            reverse("image-review", args=[image.id]),
            {"label": "fetal_femur", "comment": "Femur clearly visible"},
            **PARTIAL,
        )

        assert response.status_code == 200
        html = response.content.decode()
        assert 'class="reviewed-label">Fetal femur' in html
        assert 'class="reviewer">clin_north' in html
        assert "Model said <strong>Fetal brain</strong>" in html
        assert "Femur clearly visible" in html

    def test_a_sonographer_cannot_review(self, client_for, study, sonographer, model_version):
        image = upload(study, sonographer)
        prediction = classify(image)
        client = client_for(sonographer)

        plain = client.post(reverse("image-review", args=[image.id]), {"label": "fetal_femur"})
        partial = client.post(reverse("image-review", args=[image.id]), {"label": "fetal_femur"}, **PARTIAL)

        assert plain.status_code == partial.status_code == 403
        assert refusal(partial) == ("permission_denied", "Only clinicians can review predictions.")
        prediction.refresh_from_db()
        assert prediction.reviewed_label == ""

    def test_a_bad_label_is_a_400_naming_the_choice(self, client_for, study, sonographer, clinician, model_version):
        image = upload(study, sonographer)
        prediction = classify(image)

        response = client_for(clinician).post(
            reverse("image-review", args=[image.id]), {"label": "fetal_heart"}, **PARTIAL
        )

        assert response.status_code == 400
        code, message = refusal(response)
        assert code == "invalid" and "fetal_heart is not one of the available choices" in message
        prediction.refresh_from_db()
        assert prediction.reviewed_label == ""

    def test_an_image_still_being_classified_cannot_be_reviewed_yet(
        self, client_for, study, sonographer, clinician, model_version
    ):
        image = upload(study, sonographer)
        client = client_for(clinician)
        url = reverse("image-review", args=[image.id])

        partial = client.post(url, {"label": "fetal_femur"}, **PARTIAL)
        plain = client.post(url, {"label": "fetal_femur"}, follow=True)

        # The API's status and words (409 not_classified), not a page's own.
        assert partial.status_code == 409
        code, message = refusal(partial)
        assert code == "not_classified" and "no prediction yet" in message
        assert plain.redirect_chain[0][1] == 302 and message in plain.content.decode()


class TestImageHistory:
    def test_lists_upload_job_prediction_and_review_with_who(
        self, client_for, study, sonographer, clinician, model_version
    ):
        image = upload(study, sonographer, name="femur.png")
        prediction = classify(image, label="fetal_brain", confidence=0.7)
        classifier_services.prediction_review(
            prediction=prediction, label="fetal_femur", reviewed_by=clinician, comment="femur"
        )

        response = client_for(clinician).get(reverse("image-history", args=[image.id]), {"fragment": 1})

        text = response.content.decode()
        kinds = [event.kind for event in response.context["events"]]
        assert kinds == ["upload", "job", "job", "prediction", "job", "review"]
        assert "Uploaded femur.png" in text
        assert "Model predicted Fetal brain (70%)" in text
        assert "clin_north" in text and "Corrected to Fetal femur (model said Fetal brain)" in text

    def test_another_clinics_image_history_is_a_404(self, client_for, study, sonographer, south_sonographer):
        image = upload(study, sonographer)
        assert client_for(south_sonographer).get(reverse("image-history", args=[image.id])).status_code == 404


class TestModelPage:
    def test_shows_the_active_model_threshold_figures_and_intended_use(self, client_for, sonographer, model_version):
        html = client_for(sonographer).get(reverse("model-info")).content.decode()
        assert "tiny v1" in html
        assert "0.50" in html
        assert "0.912" in html
        assert "Decision support, not diagnosis." in html
        assert "Not for anomaly detection." in html
        assert "0.881" in html and "Fetal femur" in html
        assert "train / african: fetal_brain 40" in html and "Burgos-Artizzu 2020" in html

    def test_shows_the_novelty_threshold_and_the_bar_misses_the_card_records(
        self, client_for, sonographer, model_version
    ):
        model_version.novelty_threshold = 0.655
        model_version.metrics = {**model_version.metrics, "bar": {"misses": ["all: fetal_thorax recall 0.833 < 0.9"]}}
        model_version.save()

        html = client_for(sonographer).get(reverse("model-info")).content.decode()

        assert "Novelty threshold" in html and "0.655" in html
        assert "Below the bar" in html and "fetal_thorax recall 0.833 &lt; 0.9" in html

    def test_a_model_meeting_the_bar_shows_no_warning(self, client_for, sonographer, model_version):
        html = client_for(sonographer).get(reverse("model-info")).content.decode()
        assert "Below the bar" not in html and "Novelty threshold" not in html

    def test_says_when_no_model_is_active(self, client_for, sonographer):
        assert b"No model is active" in client_for(sonographer).get(reverse("model-info")).content
