"""A real PACS pushes to the app: Orthanc (run as a plain process with its own storage on free 127.0.0.1 ports)
stores instances, then sends them to the receiver by C-STORE and to /dicomweb/ by STOW-RS through its DICOMweb
plugin, configured with docs/dicom.md's snippet; through the same plugin it also searches the app (QIDO-RS),
reads metadata and retrieves a study (WADO-RS) as a DICOMweb client. Skipped, saying why, where Orthanc or its
plugin is absent."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.urls import reverse
from pydicom.uid import generate_uid
from rest_framework.authtoken.models import Token

from classifier.models import ClassificationJob
from dicom.services import dicom_peer_create
from patients.models import Patient, Study
from tests.conftest import wait_for
from tests.dicom.dicomweb_clients import dataset, stow
from tests.dicom_samples import dicom_bytes
from tests.patients.test_views import card_attributes

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
ORTHANC_AE = "ORTHANC"
PLUGIN_DIRS = (Path("/usr/share/orthanc/plugins"), Path("/usr/lib/orthanc"))
PROXY_VARIABLES = {"http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"}


def docs_orthanc_config() -> dict:
    """docs/dicom.md's Orthanc configuration: the ```json block marked <!-- test: orthanc-config -->."""
    text = (Path(settings.BASE_DIR) / "docs" / "dicom.md").read_text()
    match = re.search(r"<!-- test: orthanc-config -->\n```json\n(.*?)\n```\n", text, re.DOTALL)
    assert match, "docs/dicom.md has no ```json block marked <!-- test: orthanc-config -->"
    return json.loads(match.group(1))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def orthanc_binaries() -> tuple[str, Path]:
    binary = shutil.which("Orthanc", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/usr/local/sbin")
    if binary is None:
        pytest.skip("Orthanc is not installed (apt-get install orthanc orthanc-dicomweb; .ci/test.sh installs it)")
    plugins = [path for folder in PLUGIN_DIRS for path in sorted(folder.glob("libOrthancDicomWeb.so*"))]
    if not plugins:
        pytest.skip("Orthanc's DICOMweb plugin is not installed (apt-get install orthanc-dicomweb)")
    return binary, plugins[0]


@pytest.fixture
def orthanc_peer(north, root):
    """Orthanc's AE title registered as a sender of North, as a clinic admin would in the admin."""
    return dicom_peer_create(clinic=north, ae_title=ORTHANC_AE, allowed_addresses="127.0.0.1", created_by=root)


@pytest.fixture
def orthanc(tmp_path, receiver_port, live_server, integrator, orthanc_peer):
    """Orthanc with docs/dicom.md's configuration pointed at the in-thread receiver and the live server (as
    North's integrator); its REST base URL, once GET /system answers. Stopped (and awaited) after the test."""
    binary, plugin = orthanc_binaries()
    config = docs_orthanc_config()
    assert config["DicomAet"] == ORTHANC_AE
    config["DicomModalities"]["fetalsite"][1:] = ["127.0.0.1", receiver_port]
    server = config["DicomWeb"]["Servers"]["fetalsite"]
    server["Url"] = f"{live_server.url}/dicomweb/"
    server["HttpHeaders"]["Authorization"] = f"Token {Token.objects.get_or_create(user=integrator)[0].key}"
    http_port = free_port()
    config |= {
        "Name": "test-pacs",
        "StorageDirectory": str(tmp_path / "orthanc-storage"),
        "IndexDirectory": str(tmp_path / "orthanc-index"),
        "HttpPort": http_port,
        "DicomPort": free_port(),
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "Plugins": [str(plugin)],
    }
    (tmp_path / "orthanc.json").write_text(json.dumps(config))
    # Orthanc's libcurl would send even 127.0.0.1 through a proxy set in the environment.
    env = {name: value for name, value in os.environ.items() if name not in PROXY_VARIABLES}
    log = (tmp_path / "orthanc.log").open("w")
    process = subprocess.Popen([binary, str(tmp_path / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{http_port}"

    def ready() -> bool:
        if process.poll() is not None:
            pytest.fail(f"Orthanc exited with {process.returncode}:\n{(tmp_path / 'orthanc.log').read_text()}")
        try:
            return requests.get(f"{base}/system", timeout=2).ok
        except requests.ConnectionError:
            return False

    try:
        wait_for(ready, timeout=30, interval=0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def upload(orthanc: str, *instances: bytes) -> str:
    """Store the instances in Orthanc (POST /instances); their Orthanc study id."""
    studies = set()
    for data in instances:
        response = requests.post(f"{orthanc}/instances", data=data, timeout=30)
        assert response.ok, response.text
        studies.add(response.json()["ParentStudy"])
    (study,) = studies
    return study


def three_instances(*, mrn: str, name: str, study_uid: str) -> list[bytes]:
    return [dicom_bytes(patient_id=mrn, patient_name=name, study_uid=study_uid, accession="ACC-PACS") for _ in range(3)]


def test_orthanc_pushes_a_study_by_c_store_and_it_is_classified_and_shown(
    orthanc, north, sonographer, active_model, celery_worker, client
):
    study_uid = generate_uid()
    orthanc_study = upload(orthanc, *three_instances(mrn="MRN-PACS-1", name="Garcia^Ana", study_uid=study_uid))

    response = requests.post(f"{orthanc}/modalities/fetalsite/store", json={"Resources": [orthanc_study]}, timeout=60)

    assert response.ok, response.text
    patient = Patient.objects.get(mrn="MRN-PACS-1")
    assert (patient.clinic, patient.family_name, patient.given_name) == (north, "Garcia", "Ana")
    study = Study.objects.get(study_instance_uid=study_uid)
    assert (study.patient, study.accession_number, study.images.count()) == (patient, "ACC-PACS", 3)
    assert {image.uploaded_by.username for image in study.images.all()} == {f"dicom-{ORTHANC_AE}"}
    jobs = ClassificationJob.objects.filter(image__study=study)
    wait_for(lambda: jobs.filter(status=ClassificationJob.Status.SUCCEEDED).count() == 3)

    client.force_login(sonographer)
    page = client.get(reverse("study-detail", args=[study.id])).content.decode()
    shown = set(map(int, re.findall(r'data-image-id="(\d+)"', page)))
    assert shown == set(study.images.values_list("id", flat=True))
    # The image cards' own status (a brain image's measurement section carries one of its own).
    assert card_attributes(page, "data-status") == ["SUCCEEDED"] * 3

    # Pushed again: the same SOP Instance UIDs are the same images.
    again = requests.post(f"{orthanc}/modalities/fetalsite/store", json={"Resources": [orthanc_study]}, timeout=60)
    assert again.ok, again.text
    assert study.images.count() == 3 and Study.objects.filter(patient=patient).count() == 1


def test_orthanc_pushes_a_study_by_stow_rs_through_its_dicomweb_plugin(orthanc, north, integrator):
    study_uid = generate_uid()
    orthanc_study = upload(orthanc, *three_instances(mrn="MRN-PACS-2", name="Okafor^Ngozi", study_uid=study_uid))
    stow = f"{orthanc}/dicom-web/servers/fetalsite/stow"

    response = requests.post(stow, json={"Resources": [orthanc_study]}, timeout=60)

    assert response.ok, response.text
    patient = Patient.objects.get(mrn="MRN-PACS-2")
    assert (patient.clinic, patient.family_name) == (north, "Okafor")
    study = Study.objects.get(study_instance_uid=study_uid)
    assert (study.patient, study.images.count()) == (patient, 3)
    assert {image.uploaded_by for image in study.images.all()} == {integrator}  # the token's account
    assert {image.dicom.source for image in study.images.all()} == {f"dicomweb:{integrator.username}"}

    again = requests.post(stow, json={"Resources": [orthanc_study]}, timeout=60)
    assert again.ok, again.text
    assert study.images.count() == 3


def test_orthanc_searches_and_retrieves_a_study_from_the_app_as_a_dicomweb_client(orthanc, live_server, integrator):
    study_uid = generate_uid()
    sent = three_instances(mrn="MRN-PACS-3", name="Silva^Rosa", study_uid=study_uid)
    assert stow(f"{live_server.url}/dicomweb", integrator, sent).status_code == 200
    server = f"{orthanc}/dicom-web/servers/fetalsite"

    found = requests.post(
        f"{server}/get", json={"Uri": "/studies", "Arguments": {"PatientID": "MRN-PACS-3"}}, timeout=60
    )
    retrieved = requests.post(f"{server}/retrieve", json={"Resources": [{"Study": study_uid}]}, timeout=60)

    assert found.ok, found.text
    assert [row["0020000D"]["Value"] for row in found.json()] == [[study_uid]]
    assert retrieved.ok, retrieved.text
    metadata = requests.post(f"{server}/get", json={"Uri": f"/studies/{study_uid}/metadata"}, timeout=60)
    assert sorted(row["00080018"]["Value"][0] for row in metadata.json()) == sorted(
        dataset(data).SOPInstanceUID for data in sent
    )
    for data in sent:
        (match,) = requests.post(f"{orthanc}/tools/lookup", data=dataset(data).SOPInstanceUID, timeout=30).json()
        copy = requests.get(f"{orthanc}/instances/{match['ID']}/file", timeout=30).content
        assert copy == data  # the original, byte for byte
