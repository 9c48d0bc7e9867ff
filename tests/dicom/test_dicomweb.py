"""DICOMweb with a real client: dicomweb-client (PyPI) stores, searches and retrieves against the live server,
authenticated by an API token, as an integration would. Raw HTTP (requests) only where the client hides what is
checked: the status codes of refusals and the retrieved bytes themselves."""

from __future__ import annotations

import pytest
import requests
from django.conf import settings

from classifier.models import ClassificationJob
from dicom import dicomweb_views
from dicom.dicomweb import MediaTypeUnsupported, MultipartMalformed, multipart_body, multipart_boundary, multipart_parts
from fetalsite.accounts.roles import Role
from fetalsite.audit.models import AccessLogEntry
from patients.models import DicomInstance, Patient, Study, UltrasoundImage
from tests.conftest import wait_for
from tests.dicom.dicomweb_clients import client_for, dataset, multipart_payloads, stow, token_of
from tests.dicom_samples import dicom_bytes
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)
STUDY_UID = "1.2.826.0.1.3680043.8.498.1001"
FAILED_SOP_SEQUENCE, REFERENCED_SOP_SEQUENCE, FAILURE_REASON = "00081198", "00081199", "00081197"


def test_store_search_and_retrieve_with_dicomweb_client(server, integrator, south_sonographer):
    client = client_for(server, integrator)
    first = dicom_bytes(study_uid=STUDY_UID, patient_id="MRN-WEB-1", accession="ACC-WEB")
    second = dicom_bytes(study_uid=STUDY_UID, patient_id="MRN-WEB-1", accession="ACC-WEB")

    response = client.store_instances(datasets=[dataset(first), dataset(second)])

    stored = {item.ReferencedSOPInstanceUID for item in response.ReferencedSOPSequence}
    assert stored == {dataset(first).SOPInstanceUID, dataset(second).SOPInstanceUID}
    assert "FailedSOPSequence" not in response
    patient = Patient.objects.get(mrn="MRN-WEB-1")
    assert patient.clinic_id == integrator.clinic_id
    study = Study.objects.get(study_instance_uid=STUDY_UID)
    assert (study.patient_id, study.accession_number) == (patient.id, "ACC-WEB")
    assert study.images.count() == 2

    # The same instance again is the same image, referenced again.
    again = client.store_instances(datasets=[dataset(first)])
    assert again.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == dataset(first).SOPInstanceUID
    assert study.images.count() == 2

    found = client.search_for_studies(search_filters={"PatientID": "MRN-WEB-1"})
    assert [row["0020000D"]["Value"] for row in found] == [[STUDY_UID]]
    assert found[0]["00201208"]["Value"] == [2] and found[0]["00080061"]["Value"] == ["US"]
    assert client.search_for_studies(search_filters={"StudyInstanceUID": STUDY_UID})[0]["00100020"]["Value"] == [
        "MRN-WEB-1"
    ]
    assert client.search_for_studies(search_filters={"PatientID": "MRN-NOBODY"}) == []
    # DICOM wildcards: "*" any run, "?" one character; anything else literally (a "." is no regex dot).
    for pattern in ("MRN-W*", "MRN-WEB-?", "*WEB*"):
        assert [
            row["0020000D"]["Value"] for row in client.search_for_studies(search_filters={"PatientID": pattern})
        ] == [[STUDY_UID]], pattern
    assert client.search_for_studies(search_filters={"PatientID": "MRN.WEB.1"}) == []
    series = client.search_for_series(study_instance_uid=STUDY_UID)
    assert len(series) == 2
    instances = client.search_for_instances(study_instance_uid=STUDY_UID)
    assert {row["00080018"]["Value"][0] for row in instances} == stored

    retrieved = client.retrieve_instance(STUDY_UID, dataset(first).SeriesInstanceUID, dataset(first).SOPInstanceUID)
    assert retrieved.SOPInstanceUID == dataset(first).SOPInstanceUID

    # Another clinic sees nothing: its searches are empty, its retrieval a 404 like an unknown UID.
    south = client_for(server, south_sonographer)
    assert south.search_for_studies(search_filters={"PatientID": "MRN-WEB-1"}) == []
    assert south.search_for_studies() == []
    assert south.search_for_instances(study_instance_uid=STUDY_UID) == []
    with pytest.raises(requests.HTTPError) as refused:
        south.retrieve_instance(STUDY_UID, dataset(first).SeriesInstanceUID, dataset(first).SOPInstanceUID)
    assert refused.value.response.status_code == 404


def test_retrieve_returns_the_stored_bytes_unchanged_and_is_access_logged(server, integrator):
    data = dicom_bytes(study_uid=STUDY_UID)
    assert stow(server, integrator, [data]).status_code == 200
    header = dataset(data)
    url = f"{server}/studies/{STUDY_UID}/series/{header.SeriesInstanceUID}/instances/{header.SOPInstanceUID}"

    response = requests.get(url, headers={"Authorization": f"Token {token_of(integrator)}"}, timeout=30)

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith('multipart/related; type="application/dicom"')
    assert multipart_payloads(response) == [data]
    image = UltrasoundImage.objects.get(dicom__sop_instance_uid=header.SOPInstanceUID)
    entry = AccessLogEntry.objects.filter(
        path=f"/dicomweb/studies/{STUDY_UID}/series/{header.SeriesInstanceUID}/instances/{header.SOPInstanceUID}"
    ).get()
    assert (entry.action, entry.object_type, entry.patient_ids) == (
        AccessLogEntry.Action.DOWNLOAD,
        "image_original",
        [image.study.patient_id],
    )


def test_a_refused_instance_is_in_the_failed_sequence_and_leaves_nothing(server, integrator):
    assert stow(server, integrator, [dicom_bytes(patient_id="MRN-WEB-2", patient_name="Doe^Jane")]).status_code == 200
    before = (Study.objects.count(), UltrasoundImage.objects.count(), DicomInstance.objects.count())
    differs = dicom_bytes(patient_id="MRN-WEB-2", patient_name="Other^Name")
    good = dicom_bytes(patient_id="MRN-WEB-3")

    partly = stow(server, integrator, [differs, good])

    assert partly.status_code == 202
    assert partly.headers["Content-Type"] == "application/dicom+json"
    body = partly.json()
    (failed,) = body[FAILED_SOP_SEQUENCE]["Value"]
    assert failed["00081155"]["Value"] == [dataset(differs).SOPInstanceUID]
    assert failed[FAILURE_REASON]["Value"] == [0xC003]  # the receiver's status for patient_details_differ
    assert [item["00081155"]["Value"] for item in body[REFERENCED_SOP_SEQUENCE]["Value"]] == [
        [dataset(good).SOPInstanceUID]
    ]
    assert not DicomInstance.objects.filter(sop_instance_uid=dataset(differs).SOPInstanceUID).exists()
    assert Study.objects.count() == before[0] + 1 and UltrasoundImage.objects.count() == before[1] + 1

    all_failed = stow(server, integrator, [differs, b"not a DICOM file at all"])
    assert all_failed.status_code == 409
    reasons = [item[FAILURE_REASON]["Value"][0] for item in all_failed.json()[FAILED_SOP_SEQUENCE]["Value"]]
    assert reasons == [0xC003, 0xC000]
    assert DicomInstance.objects.count() == before[2] + 1


def test_refusals_of_the_request_itself(server, integrator):
    data = dicom_bytes()
    no_token = requests.post(
        f"{server}/studies",
        data=b"--b\r\n\r\n" + data + b"\r\n--b--",
        headers={"Content-Type": 'multipart/related; type="application/dicom"; boundary=b'},
        timeout=30,
    )
    assert no_token.status_code == 401
    assert requests.get(f"{server}/studies", timeout=30).status_code == 401
    headers = {"Authorization": f"Token {token_of(integrator)}"}
    unclosed = requests.post(
        f"{server}/studies",
        data=b"--b\r\nContent-Type: application/dicom\r\n\r\n" + data,
        headers={**headers, "Content-Type": 'multipart/related; type="application/dicom"; boundary=b'},
        timeout=30,
    )
    assert unclosed.status_code == 400
    wrong_type = requests.post(
        f"{server}/studies", data=data, headers={**headers, "Content-Type": "application/dicom"}, timeout=30
    )
    assert wrong_type.status_code == 415
    too_many = stow(server, integrator, [data] * (settings.UPLOAD_MAX_FILES_PER_REQUEST + 1))
    assert too_many.status_code == 413
    clinic_admin = UserFactory(username="admin_north", clinic=integrator.clinic, role=Role.CLINIC_ADMIN)
    assert stow(server, clinic_admin, [data]).status_code == 403  # the roles that may upload may store
    unknown = requests.get(f"{server}/studies?PatientId=MRN-1", headers=headers, timeout=30)
    assert unknown.status_code == 400 and "PatientId" in unknown.json()["fields"]
    bad_date = requests.get(f"{server}/studies?StudyDate=2024-03", headers=headers, timeout=30)
    assert bad_date.status_code == 400
    assert not DicomInstance.objects.exists()


def test_rendered_frame_is_the_display_image(server, integrator, south_sonographer):
    data = dicom_bytes(study_uid=STUDY_UID)
    assert stow(server, integrator, [data]).status_code == 200
    header = dataset(data)
    uids = (STUDY_UID, header.SeriesInstanceUID, header.SOPInstanceUID)
    image = UltrasoundImage.objects.get(dicom__sop_instance_uid=header.SOPInstanceUID)

    png = client_for(server, integrator).retrieve_instance_frames_rendered(
        *uids, frame_numbers=[1], media_types=("image/png",)
    )

    with image.file.open("rb") as display:
        assert png == display.read()
    jpeg = client_for(server, integrator).retrieve_instance_rendered(*uids, media_types=("image/jpeg",))
    assert jpeg[:3] == b"\xff\xd8\xff"
    with pytest.raises(requests.HTTPError) as no_frame:
        client_for(server, integrator).retrieve_instance_frames_rendered(*uids, frame_numbers=[2])
    assert no_frame.value.response.status_code == 404
    still = f"{server}/studies/{STUDY_UID}/series/{header.SeriesInstanceUID}/instances/{header.SOPInstanceUID}/rendered"
    video = requests.get(
        still, headers={"Authorization": f"Token {token_of(integrator)}", "Accept": "video/mp4"}, timeout=30
    )
    assert video.status_code == 406  # a still has no video
    with pytest.raises(requests.HTTPError) as other_clinic:
        client_for(server, south_sonographer).retrieve_instance_rendered(*uids)
    assert other_clinic.value.response.status_code == 404


@pytest.mark.parametrize(
    ("content_type", "body", "refusal"),
    [
        ('multipart/related; type="application/dicom"', b"--b\r\n\r\nx\r\n--b--", MultipartMalformed),  # no boundary
        ("multipart/related; type=application/dicom; boundary=b", b"--b--", MultipartMalformed),  # no parts
        ("multipart/related; type=application/dicom; boundary=b", b"no delimiter at all", MultipartMalformed),
        ("multipart/related; type=application/dicom; boundary=b", b"--b\r\nno blank line", MultipartMalformed),
        (
            'multipart/related; type="application/dicom+json"; boundary=b',
            b"--b\r\n\r\nx\r\n--b--",
            MediaTypeUnsupported,
        ),
        ("multipart/related; boundary=b", b"--b\r\nContent-Type: image/png\r\n\r\nx\r\n--b--", MediaTypeUnsupported),
        ("multipart/form-data; boundary=b", b"--b\r\n\r\nx\r\n--b--", MediaTypeUnsupported),
    ],
)
def test_the_multipart_parser_refuses_what_it_cannot_read_whole(content_type, body, refusal):
    with pytest.raises(refusal):
        multipart_parts(body, boundary=multipart_boundary(content_type), max_parts=5)


def test_the_multipart_parser_takes_a_preamble_padding_and_part_headers():
    first = b"--b \r\nContent-Type: application/dicom\r\nContent-Length: 3\r\n\r\none\r\n"
    body = b"preamble\r\n" + first + b"--b\r\n\r\ntwo\r\n--b--"
    assert multipart_parts(body, boundary="b", max_parts=2) == [b"one", b"two"]
    assert multipart_body([b"one", b"two"], boundary="b").count(b"--b") == 3


def test_a_boundary_longer_than_rfc_2046s_70_characters_is_taken_as_orthanc_sends_it():
    orthanc = "bc51eb17-5699-496e-ba52-7377dfeeb03a-bc51eb17-5699-496e-ba52-7377dfeeb03a"  # 73 characters
    assert multipart_boundary(f'multipart/related; type="application/dicom"; boundary={orthanc}') == orthanc
    with pytest.raises(MultipartMalformed):
        multipart_boundary(f'multipart/related; type="application/dicom"; boundary={"b" * 201}')


def test_qido_instances_carry_instance_number_and_what_includefield_names(server, integrator):
    files = [dicom_bytes(study_uid=STUDY_UID, InstanceNumber=number) for number in (3, 1, 2)]
    assert stow(server, integrator, files).status_code == 200
    client = client_for(server, integrator)

    plain = client.search_for_instances(study_instance_uid=STUDY_UID)
    named = client.search_for_instances(study_instance_uid=STUDY_UID, fields=["Manufacturer", "00280010"])
    everything = client.search_for_instances(study_instance_uid=STUDY_UID, fields=["all"])

    assert sorted(row["00200013"]["Value"][0] for row in plain) == [1, 2, 3]
    assert all("00080070" not in row for row in plain)  # the header's other attributes only when asked for
    assert {(row["00080070"]["Value"][0], row["00280010"]["Value"][0]) for row in named} == {("Acme Medical", 120)}
    assert all("00100010" not in row for row in named)
    assert {row["00100010"]["Value"][0]["Alphabetic"] for row in everything} == {"Doe^Jane"}
    assert all("7FE00010" not in row for row in everything)
    headers = {"Authorization": f"Token {token_of(integrator)}"}
    for value in ("NoSuchKeyword", "0010002", "PatientID,Nope"):
        refused = requests.get(
            f"{server}/studies/{STUDY_UID}/instances?includefield={value}", headers=headers, timeout=30
        )
        assert refused.status_code == 400 and "includefield" in refused.json()["fields"], value
    assert requests.get(f"{server}/studies?includefield=00100020", headers=headers, timeout=30).status_code == 200


def test_qido_pages_with_limit_and_offset_and_warns_when_the_server_cut_the_page(server, integrator, monkeypatch):
    monkeypatch.setattr(dicomweb_views, "QIDO_MAX_LIMIT", 2)
    files = [dicom_bytes(study_uid=STUDY_UID, InstanceNumber=number) for number in (1, 2, 3)]
    assert stow(server, integrator, files).status_code == 200
    headers = {"Authorization": f"Token {token_of(integrator)}"}

    def search(query: str) -> requests.Response:
        return requests.get(f"{server}/studies/{STUDY_UID}/instances?{query}", headers=headers, timeout=30)

    capped, over, asked, rest, beyond = (
        search("limit=0"),
        search("limit=50"),
        search("limit=2"),
        search("offset=2"),
        search("offset=9"),
    )
    assert [len(page.json()) for page in (capped, over, asked, rest)] == [2, 2, 2, 1] and beyond.json() == []
    assert (
        capped.headers["Warning"].startswith("299 ")
        and "Additional results can be requested" in over.headers["Warning"]
    )
    assert "Warning" not in asked.headers and "Warning" not in rest.headers  # the caller's own limit, or all there is
    paged = client_for(server, integrator).search_for_instances(study_instance_uid=STUDY_UID, get_remaining=True)
    assert sorted(row["00200013"]["Value"][0] for row in paged) == [1, 2, 3]
    assert search("limit=-1").status_code == 400 and search("offset=x").status_code == 400


def test_qido_matches_patients_name_as_a_viewers_study_list_asks(server, integrator, south_sonographer):
    data = dicom_bytes(study_uid=STUDY_UID, patient_id="MRN-NAME-1", patient_name="Smith^Anna")
    assert stow(server, integrator, [data]).status_code == 200
    client = client_for(server, integrator)

    def found(name: str) -> list:
        return [row["0020000D"]["Value"] for row in client.search_for_studies(search_filters={"PatientName": name})]

    for name in ("Smith^Anna", "smith^anna", "SMI*", "Smith", "*mith*", "S?ith^A*"):
        assert found(name) == [[STUDY_UID]], name
    for name in ("Anna", "Smith^Bob", "Smith.Anna", "Smit"):
        assert found(name) == [], name
    assert client_for(server, south_sonographer).search_for_studies(search_filters={"PatientName": "Smith*"}) == []


def test_instances_stored_by_dicomweb_client_are_classified_then_found_and_fetched(
    server, integrator, active_model, celery_worker
):
    client = client_for(server, integrator)
    sent = [dicom_bytes(study_uid=STUDY_UID, patient_id="MRN-WEB-9", InstanceNumber=n) for n in (1, 2)]

    client.store_instances(datasets=[dataset(data) for data in sent])

    jobs = ClassificationJob.objects.filter(image__dicom__study_instance_uid=STUDY_UID)
    wait_for(lambda: jobs.filter(status=ClassificationJob.Status.SUCCEEDED).count() == 2)
    assert all(job.prediction.label for job in jobs)
    assert [
        row["00201208"]["Value"] for row in client.search_for_studies(search_filters={"PatientID": "MRN-WEB-9"})
    ] == [[2]]
    fetched = client.retrieve_study(STUDY_UID)
    assert sorted(instance.SOPInstanceUID for instance in fetched) == sorted(
        dataset(data).SOPInstanceUID for data in sent
    )
