"""The study report from the study page, in a real browser: once a clinician has signed the study off, "Download
report (PDF)" saves a PDF that names the planes the clinician confirmed."""

from __future__ import annotations

import io

import pytest
from pypdf import PdfReader

from classifier.labels import plane_display
from classifier.services import classification_job_run, image_review
from patients.services import image_upload, study_sign_off
from tests.e2e.test_study_page import sample_images

expect = pytest.importorskip("playwright.sync_api", reason="pip install -r requirements-dev.txt").expect

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_the_signed_study_page_downloads_its_report(log_in, live_server, study, clinician, active_model):
    confirmed = ("fetal_brain", "fetal_femur")  # what sample_images holds, real or generated
    for (name, _, data), label in zip(sample_images(), confirmed, strict=True):
        image = image_upload(study=study, data=data, filename=name, uploaded_by=study.created_by).image
        classification_job_run(job_id=image.jobs.get().id)
        image_review(image=image, label=label, reviewed_by=clinician)
    study_sign_off(study=study, signed_by=clinician, acknowledged=True)  # thorax and abdomen are missing
    page = log_in(clinician)
    page.goto(f"{live_server.url}/studies/{study.id}/")

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download report (PDF)").click()

    download = download_info.value
    assert download.suggested_filename == f"study-{study.id}-report.pdf"
    pages = PdfReader(io.BytesIO(download.path().read_bytes())).pages
    text = " ".join(" ".join(page.extract_text().split()) for page in pages)
    for label in confirmed:
        assert plane_display(label) in text
    assert text.count("Confirmed") == 2 and text.count("Missing") == 2
    assert study.patient.mrn in text
