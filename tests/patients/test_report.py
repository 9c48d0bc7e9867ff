"""The study report (issue 19, item 4): a signed-off study's one-page PDF, rendered by WeasyPrint, read back with
pypdf (its text) and pypdfium2 (its first page as pixels); the page route and the API, their refusals and the
access log."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import numpy as np
import pytest
from django.urls import reverse
from pypdf import PdfReader

from classifier.labels import PLANE_LABELS, plane_display
from classifier.services import classification_job_run, image_review
from fetalsite.accounts.roles import Role
from fetalsite.audit.models import AccessLogEntry
from patients import services as patient_services
from patients.report import REPORT_FONTS, _url_fetcher, study_report_pdf
from tests.factories import StudyFactory, UserFactory
from tests.images import png_bytes

pytestmark = pytest.mark.django_db

DATA = Path(__file__).resolve().parents[3] / "shared/data/fetal-planes"
DISCLAIMER = "Decision support for trained staff — not a diagnosis."
IMAGES_PER_PLANE = 2  # eight key images: a typical study, on one page


def _plane_images(label: str, count: int) -> list[bytes]:
    """Real images of ``label`` from the data set's test split (the first ``count``)."""
    found = []
    with open(DATA / "manifest.csv", newline="") as manifest:
        for row in csv.DictReader(manifest):
            if row["label"] == label and row["split"] == "test" and (DATA / row["file"]).is_file():
                found.append((DATA / row["file"]).read_bytes())
            if len(found) == count:
                return found
    pytest.skip(f"fewer than {count} {label} images in {DATA}")


@pytest.fixture
def real_images():
    if not (DATA / "manifest.csv").is_file():
        pytest.skip(f"the fetal-planes images are absent ({DATA})")
    return {label: _plane_images(label, IMAGES_PER_PLANE) for label in PLANE_LABELS}


@pytest.fixture
def reviewer(north):
    return UserFactory(username="clin_north", clinic=north, role=Role.CLINICIAN, first_name="Inès", last_name="Ødegård")


@pytest.fixture
def accented_study(sonographer):
    return StudyFactory(
        patient__clinic=sonographer.clinic,
        patient__given_name="Zoë",
        patient__family_name="Núñez",
        patient__mrn="N-2024-0815",
        accession_number="ACC-7731",
        created_by=sonographer,
    )


def _upload_and_classify(study, data: bytes, *, name: str, user):
    image = patient_services.image_upload(study=study, data=data, filename=name, uploaded_by=user).image
    classification_job_run(job_id=image.jobs.get().id)  # the real job with the test suite's tiny model
    return image


@pytest.fixture
def signed_study(accented_study, sonographer, reviewer, active_model, real_images):
    """A typical study: two real images of each plane confirmed or corrected by a clinician, one marked not a
    plane, one excluded as a test image, then signed off through the services."""
    study = accented_study
    for label, images in real_images.items():
        for n, data in enumerate(images):
            image = _upload_and_classify(study, data, name=f"{label}-{n}.png", user=sonographer)
            image_review(image=image, label=label, reviewed_by=reviewer)
    photo = _upload_and_classify(study, png_bytes(320, 240, seed=5, mode="RGB"), name="parrot.png", user=sonographer)
    image_review(image=photo, not_plane_reason="non_fetal", reviewed_by=reviewer)
    test_image = _upload_and_classify(study, png_bytes(320, 240, seed=6), name="test.png", user=sonographer)
    patient_services.image_exclude(image=test_image, excluded_by=reviewer, reason="test_image")
    return patient_services.study_sign_off(study=study, signed_by=reviewer)


def _pdf_text(pdf: bytes) -> str:
    """The PDF's text with its line breaks as spaces (pypdf breaks lines where the layout wrapped them)."""
    return " ".join(" ".join(page.extract_text().split()) for page in PdfReader(io.BytesIO(pdf)).pages)


def _first_page_pixels(pdf: bytes) -> np.ndarray:
    import pypdfium2

    document = pypdfium2.PdfDocument(pdf)
    try:
        return np.asarray(document[0].render(scale=1).to_pil().convert("L"), dtype=np.float32)
    finally:
        document.close()


class TestStudyReportPdf:
    def test_a_signed_study_gives_one_page_with_everything_a_report_names(self, signed_study, reviewer):
        started = time.perf_counter()
        pdf = study_report_pdf(study=signed_study, user=reviewer)
        elapsed = time.perf_counter() - started

        print(f"\nreport of {signed_study.images.count()} images rendered in {elapsed:.2f} s, {len(pdf)} bytes")
        assert pdf.startswith(b"%PDF-")
        assert len(PdfReader(io.BytesIO(pdf)).pages) == 1
        text = _pdf_text(pdf)
        for expected in (
            "North Clinic",
            "Núñez, Zoë",
            "N-2024-0815",
            "ACC-7731",
            "2026-01-15",
            "20w3d",
            "Inès Ødegård",
            "tiny v1",
            DISCLAIMER,
        ):
            assert expected in text, expected
        for label in PLANE_LABELS:
            assert plane_display(label) in text
        assert text.count("Confirmed") >= 4  # each plane's state: a clinician's plane
        assert "1 not a standard fetal plane" in text and "1 excluded from the study" in text
        assert "parrot" not in text and "test.png" not in text

    def test_its_first_page_is_not_blank(self, signed_study, reviewer):
        pixels = _first_page_pixels(study_report_pdf(study=signed_study, user=reviewer))

        assert pixels.shape[0] > pixels.shape[1]  # A4 portrait
        assert pixels.std() > 20  # text and eight ultrasound thumbnails, not an empty page
        assert (pixels < 40).mean() > 0.02  # the thumbnails' dark fans

    def test_a_study_signed_with_planes_missing_says_so(self, study, clinician):
        patient_services.study_sign_off(study=study, signed_by=clinician, acknowledged=True)

        text = _pdf_text(study_report_pdf(study=study, user=clinician))

        assert text.count("Missing") == 4 and text.count("No image of this plane.") == 4
        assert "0 not a standard fetal plane" in text and "— (none)" in text

    def test_an_open_study_has_no_report(self, study, clinician):
        with pytest.raises(patient_services.StudyNotSigned):
            study_report_pdf(study=study, user=clinician)

    def test_rendering_leaves_truncated_uploads_refused(self, signed_study, reviewer):
        """Importing WeasyPrint sets Pillow's process-wide LOAD_TRUNCATED_IMAGES; the report puts it back."""
        from django.core.exceptions import ValidationError

        from patients.imaging import inspect_image_bytes

        study_report_pdf(study=signed_study, user=reviewer)

        with pytest.raises(ValidationError) as refused:
            inspect_image_bytes(png_bytes()[:200])
        assert refused.value.error_dict["file"][0].code == "corrupt"

    def test_another_clinics_user_gets_404(self, signed_study, south_sonographer):
        from django.http import Http404

        with pytest.raises(Http404):
            study_report_pdf(study=signed_study, user=south_sonographer)


class TestStudyReportRoutes:
    def test_the_page_downloads_it_and_the_access_log_records_it(self, client, signed_study, sonographer):
        client.force_login(sonographer)
        page = client.get(reverse("study-detail", args=[signed_study.id])).content.decode()
        url = reverse("study-report", args=[signed_study.id])
        assert f'href="{url}"' in page and "Download report (PDF)" in page

        response = client.get(url)

        assert response.status_code == 200 and response.content.startswith(b"%PDF-")
        assert response["Content-Type"] == "application/pdf"
        assert response["Content-Disposition"] == f'attachment; filename="study-{signed_study.id}-report.pdf"'
        assert response["Cache-Control"] == "no-store"
        assert response["X-Content-Type-Options"] == "nosniff"
        entry = AccessLogEntry.objects.filter(user=sonographer).latest("id")
        assert (entry.action, entry.object_type, entry.object_id) == ("DOWNLOAD", "study_report", signed_study.id)
        assert entry.patient_id == signed_study.patient_id

    def test_the_api_gives_the_same_pdf(self, api_client, signed_study, integrator):
        response = api_client.get(f"/api/v1/studies/{signed_study.id}/report/", HTTP_ACCEPT="application/pdf")

        assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
        assert "N-2024-0815" in _pdf_text(response.content)
        entry = AccessLogEntry.objects.filter(user=integrator).latest("id")
        assert (entry.action, entry.object_type, entry.object_id) == ("DOWNLOAD", "study_report", signed_study.id)

    def test_before_sign_off_the_api_answers_409_and_the_page_has_no_link(self, client, api_client, study):
        response = api_client.get(f"/api/v1/studies/{study.id}/report/")

        assert response.status_code == 409
        assert response.json()["code"] == "study_not_signed"
        client.force_login(study.created_by)
        assert "Download report (PDF)" not in client.get(reverse("study-detail", args=[study.id])).content.decode()
        page = client.get(reverse("study-report", args=[study.id]))
        assert page.status_code == 302 and page["Location"] == reverse("study-detail", args=[study.id])

    def test_another_clinic_gets_404(self, client, south_api_client, signed_study, south_sonographer):
        assert south_api_client.get(f"/api/v1/studies/{signed_study.id}/report/").status_code == 404
        client.force_login(south_sonographer)
        assert client.get(reverse("study-report", args=[signed_study.id])).status_code == 404


def test_the_renderer_reads_nothing_but_its_fonts():
    fetcher = _url_fetcher()
    for url in ("http://127.0.0.1:8000/images/1/file/", "https://example.org/x.png", "file:///etc/passwd"):
        with pytest.raises(ValueError):
            fetcher.fetch(url)

    font = fetcher.fetch(REPORT_FONTS["regular"].as_uri())
    try:
        assert font.read(4) == b"\x00\x01\x00\x00"  # a TrueType font, from Debian's fonts-dejavu-core
    finally:
        font.close()
