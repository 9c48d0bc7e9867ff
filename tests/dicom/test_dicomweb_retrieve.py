"""WADO-RS beyond one instance: a study's and a series' instances (the originals, byte for byte, streamed), their
metadata as DICOM JSON, and rendered frames of a multi-frame instance. dicomweb-client retrieves as a viewer's
back end would; raw requests check the bytes, the headers and the refusals. Another clinic's UIDs answer exactly as
unknown ones."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
import requests
from PIL import Image
from pydicom.encaps import generate_frames
from pydicom.uid import JPEGBaseline8Bit, UltrasoundMultiFrameImageStorage, generate_uid
from rest_framework.test import APIClient

from classifier.ml.frames import iter_frames
from fetalsite.audit.models import AccessLogEntry
from patients.models import UltrasoundImage
from tests.dicom.dicomweb_clients import client_for, dataset, get, multipart_payloads, stow, token_of
from tests.dicom_samples import dicom_bytes, ultrasound_pixels

pytestmark = pytest.mark.django_db(transaction=True)
STUDY_UID = "1.2.826.0.1.3680043.8.498.2001"
SERIES_A, SERIES_B = "1.2.826.0.1.3680043.8.498.2001.1", "1.2.826.0.1.3680043.8.498.2001.2"
DICOM_PARTS = 'multipart/related; type="application/dicom"'
EXPLICIT_LE, JPEG_BASELINE = "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.4.50"


@pytest.fixture
def stored(server, integrator) -> dict[str, bytes]:
    """Three instances of one North study stored by STOW-RS: two in series A (one JPEG Baseline), one in B;
    SOP Instance UID -> the bytes sent."""
    files = [
        dicom_bytes(study_uid=STUDY_UID, SeriesInstanceUID=SERIES_A, InstanceNumber=1),
        dicom_bytes(
            study_uid=STUDY_UID, SeriesInstanceUID=SERIES_A, InstanceNumber=2, transfer_syntax=JPEGBaseline8Bit
        ),
        dicom_bytes(study_uid=STUDY_UID, SeriesInstanceUID=SERIES_B, InstanceNumber=1),
    ]
    assert stow(server, integrator, files).status_code == 200
    return {dataset(data).SOPInstanceUID: data for data in files}


def clip_bytes(count: int, **header) -> bytes:
    """A multi-frame ultrasound file: a real frame shifted a few pixels further in each (a probe's slow sweep)."""
    base = ultrasound_pixels()
    frames = np.stack([np.roll(base, 4 * index, axis=1) for index in range(count)])
    ds = dataset(dicom_bytes(base, sop_class=UltrasoundMultiFrameImageStorage, frames=count, **header))
    ds.PixelData = frames.tobytes()
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def test_study_and_series_retrieval_send_every_original_of_the_clinic(server, integrator, stored):
    client = client_for(server, integrator)

    study = client.retrieve_study(STUDY_UID)
    series = client.retrieve_series(STUDY_UID, SERIES_A)

    assert {instance.SOPInstanceUID for instance in study} == set(stored)
    assert {instance.SOPInstanceUID for instance in series} == {
        uid for uid, data in stored.items() if dataset(data).SeriesInstanceUID == SERIES_A
    }
    raw = get(f"{server}/studies/{STUDY_UID}", integrator)
    assert raw.status_code == 200 and raw.headers["Content-Type"].startswith(DICOM_PARTS)
    assert sorted(multipart_payloads(raw)) == sorted(stored.values())  # the originals, byte for byte
    images = UltrasoundImage.objects.filter(dicom__study_instance_uid=STUDY_UID)
    entries = AccessLogEntry.objects.filter(path=f"/dicomweb/studies/{STUDY_UID}")
    assert {(entry.action, entry.object_type, tuple(entry.patient_ids)) for entry in entries} == {
        (AccessLogEntry.Action.DOWNLOAD, "image_original", (images[0].study.patient_id,))
    }
    assert entries.count() == 2  # dicomweb-client's retrieval and the raw one


def test_study_retrieval_is_streamed_a_file_at_a_time(integrator, stored):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_of(integrator)}")

    response = client.get(f"/dicomweb/studies/{STUDY_UID}", HTTP_ACCEPT=f"{DICOM_PARTS}; transfer-syntax=*")

    assert response.status_code == 200 and response.streaming
    chunks = list(response.streaming_content)
    assert len(chunks) > len(stored)  # headers, file chunks and delimiters go out one by one
    assert all(data in b"".join(chunks) for data in stored.values())


def test_another_clinics_study_and_series_answer_as_unknown_ones(server, integrator, south_sonographer, stored):
    paths = (f"studies/{STUDY_UID}", f"studies/{STUDY_UID}/series/{SERIES_A}", f"studies/{STUDY_UID}/metadata")
    for path in paths:
        theirs = get(f"{server}/{path}", south_sonographer)
        unknown = get(f"{server}/{path.replace(STUDY_UID, generate_uid())}", south_sonographer)
        assert theirs.status_code == unknown.status_code == 404, path
        assert theirs.json() == unknown.json(), path
    with pytest.raises(requests.HTTPError) as refused:
        client_for(server, south_sonographer).retrieve_series(STUDY_UID, SERIES_A)
    assert refused.value.response.status_code == 404
    assert get(f"{server}/studies/{STUDY_UID}/series/{generate_uid()}", integrator).status_code == 404


@pytest.mark.parametrize(
    ("accept", "status"),
    [
        (None, 200),
        ("*/*", 200),
        (DICOM_PARTS, 200),  # no transfer-syntax: as stored (dicomweb-client's default)
        (f"{DICOM_PARTS}; transfer-syntax=*", 200),
        (f"{DICOM_PARTS}; transfer-syntax={EXPLICIT_LE}, {DICOM_PARTS}; transfer-syntax={JPEG_BASELINE}", 200),
        (f"{DICOM_PARTS}; transfer-syntax={EXPLICIT_LE}", 406),  # one is JPEG Baseline: never transcoded
        (f"{DICOM_PARTS}; transfer-syntax=*; q=0", 406),
        ("application/dicom", 406),  # a bare part: WADO-RS answers multipart/related
        ('multipart/related; type="application/octet-stream"', 406),
        ("application/dicom+json", 406),
    ],
)
def test_retrieval_negotiates_the_accept_header(server, integrator, stored, accept, status):
    headers = {} if accept is None else {"Accept": accept}

    response = get(f"{server}/studies/{STUDY_UID}", integrator, **headers)

    assert response.status_code == status, response.text
    if status == 406:
        assert response.json()["code"] == "not_acceptable"
        assert "transfer-syntax=*" in response.json()["detail"]


def test_a_series_stored_in_one_syntax_may_be_asked_for_in_that_syntax(server, integrator, stored):
    explicit = f"{DICOM_PARTS}; transfer-syntax={EXPLICIT_LE}"
    assert get(f"{server}/studies/{STUDY_UID}/series/{SERIES_B}", integrator, Accept=explicit).status_code == 200
    assert get(f"{server}/studies/{STUDY_UID}/series/{SERIES_A}", integrator, Accept=explicit).status_code == 406


def test_metadata_is_each_header_as_dicom_json_without_pixel_data(server, integrator, stored):
    client = client_for(server, integrator)
    first = dataset(next(iter(stored.values())))

    study = client.retrieve_study_metadata(STUDY_UID)
    series = client.retrieve_series_metadata(STUDY_UID, SERIES_B)
    instance = client.retrieve_instance_metadata(STUDY_UID, first.SeriesInstanceUID, first.SOPInstanceUID)

    assert {row["00080018"]["Value"][0] for row in study} == set(stored)
    assert [row["0020000E"]["Value"] for row in series] == [[SERIES_B]]
    del first.PixelData
    assert instance == first.to_json_dict()  # every attribute of the header, as pydicom writes DICOM JSON
    assert all("7FE00010" not in row for row in study)
    assert instance["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "Doe^Jane"}]}
    loaded = pydicom.Dataset.from_json(instance)
    assert (loaded.Rows, loaded.InstanceNumber, loaded.Manufacturer) == (first.Rows, 1, "Acme Medical")
    response = get(f"{server}/studies/{STUDY_UID}/metadata", integrator)
    assert response.headers["Content-Type"] == "application/dicom+json"
    entries = AccessLogEntry.objects.filter(path=f"/dicomweb/studies/{STUDY_UID}/metadata")
    assert {(entry.action, entry.object_type) for entry in entries} == {(AccessLogEntry.Action.VIEW, "image")}
    xml = get(
        f"{server}/studies/{STUDY_UID}/metadata", integrator, Accept='multipart/related; type="application/dicom+xml"'
    )
    assert xml.status_code == 406


@pytest.fixture
def clip(server, integrator) -> tuple[str, str, str]:
    data = clip_bytes(6, study_uid=STUDY_UID)
    assert stow(server, integrator, [data]).status_code == 200, "a multi-frame instance is stored"
    header = dataset(data)
    return STUDY_UID, header.SeriesInstanceUID, header.SOPInstanceUID


def test_every_frame_of_a_multi_frame_instance_renders(server, integrator, clip):
    client = client_for(server, integrator)
    original = UltrasoundImage.objects.get(dicom__sop_instance_uid=clip[2]).original.read()
    decoded = [np.asarray(frame) for frame in iter_frames(original)]

    rendered = [
        client.retrieve_instance_frames_rendered(*clip, frame_numbers=[number], media_types=("image/png",))
        for number in range(1, 7)
    ]

    assert [
        np.array_equal(np.asarray(Image.open(io.BytesIO(png))), frame)
        for png, frame in zip(rendered, decoded, strict=True)
    ] == [True] * 6
    assert not np.array_equal(decoded[0], decoded[5])  # the frames differ: each is its own
    jpeg = client.retrieve_instance_frames_rendered(*clip, frame_numbers=[4], media_types=("image/jpeg",))
    assert jpeg[:3] == b"\xff\xd8\xff"
    assert client.retrieve_instance_rendered(*clip, media_types=("image/png",)) == rendered[0]
    assert client.retrieve_instance(*clip).NumberOfFrames == 6
    video = client.retrieve_instance_rendered(*clip, media_types=("video/mp4",))
    assert video == UltrasoundImage.objects.get(dicom__sop_instance_uid=clip[2]).playback.read()  # the loop itself
    assert video[4:8] == b"ftyp"


@pytest.mark.parametrize(
    ("frames", "status", "code"),
    [
        ("7", 404, "frame_not_found"),
        ("0", 400, "invalid_frame_list"),
        ("x", 400, "invalid_frame_list"),
        ("1,2", 400, "invalid_frame_list"),
    ],
)
def test_frame_numbers_outside_the_instance_are_refused_clearly(server, integrator, clip, frames, status, code):
    url = f"{server}/studies/{clip[0]}/series/{clip[1]}/instances/{clip[2]}/frames/{frames}/rendered"

    response = get(url, integrator)

    assert (response.status_code, response.json()["code"]) == (status, code)
    if status == 404:
        assert "6 frames" in response.json()["detail"]


def test_rendered_negotiates_and_another_clinic_sees_nothing(server, integrator, south_sonographer, clip):
    url = f"{server}/studies/{clip[0]}/series/{clip[1]}/instances/{clip[2]}/frames/2/rendered"
    assert get(url, integrator, Accept="image/gif").status_code == 406
    assert get(url, integrator, Accept="video/mp4").status_code == 406  # one frame is no video
    assert get(url, integrator, Accept="image/jpeg, image/png;q=0.5").headers["Content-Type"] == "image/jpeg"
    assert get(url, integrator, Accept="image/*").headers["Content-Type"] == "image/png"
    theirs, unknown = get(url, south_sonographer), get(url.replace(clip[2], generate_uid()), south_sonographer)
    assert theirs.status_code == unknown.status_code == 404 and theirs.json() == unknown.json()
    metadata = get(url.replace("/frames/2/rendered", "/metadata"), south_sonographer)
    assert metadata.status_code == 404


def test_frames_are_the_pixel_data_as_stored_for_a_viewer(server, integrator, clip, stored):
    client = client_for(server, integrator)
    original = dataset(UltrasoundImage.objects.get(dicom__sop_instance_uid=clip[2]).original.read())

    native = client.retrieve_instance_frames(*clip, frame_numbers=[2, 5])

    shape = (original.Rows, original.Columns)
    assert np.array_equal(
        np.stack([np.frombuffer(frame, np.uint8).reshape(shape) for frame in native]), original.pixel_array[[1, 4]]
    )
    jpeg_uid = next(uid for uid, data in stored.items() if dataset(data).file_meta.TransferSyntaxUID == JPEG_BASELINE)
    jpeg = dataset(stored[jpeg_uid])
    (frame,) = client.retrieve_instance_frames(STUDY_UID, SERIES_A, jpeg_uid, frame_numbers=[1])
    assert frame == next(generate_frames(jpeg.PixelData, number_of_frames=1))  # the JPEG codestream as stored
    assert frame[:2] == b"\xff\xd8"


@pytest.mark.parametrize(
    ("accept", "native", "compressed"),
    [
        (None, "application/octet-stream", "image/jpeg"),
        (
            'multipart/related; type="application/octet-stream"; transfer-syntax=*',
            "application/octet-stream",
            "application/octet-stream",
        ),  # OHIF's
        ('multipart/related; type="application/octet-stream"', "application/octet-stream", 406),  # native only
        ('multipart/related; type="image/jpeg"', 406, "image/jpeg"),
        ('multipart/related; type="image/jp2"', 406, 406),
    ],
)
def test_frames_negotiate_the_accept_header(server, integrator, clip, stored, accept, native, compressed):
    jpeg_uid = next(uid for uid, data in stored.items() if dataset(data).file_meta.TransferSyntaxUID == JPEG_BASELINE)
    headers = {} if accept is None else {"Accept": accept}
    for (series, instance), expected, syntax in (
        ((clip[1], clip[2]), native, EXPLICIT_LE),
        ((SERIES_A, jpeg_uid), compressed, JPEG_BASELINE),
    ):
        response = get(
            f"{server}/studies/{STUDY_UID}/series/{series}/instances/{instance}/frames/1", integrator, **headers
        )
        if expected == 406:
            assert response.status_code == 406, accept
            continue
        assert response.headers["Content-Type"].startswith(f'multipart/related; type="{expected}"'), accept
        assert f"Content-Type: {expected}; transfer-syntax={syntax}\r\n".encode() in response.content


def test_frames_outside_the_instance_and_of_another_clinic_are_refused(server, integrator, south_sonographer, clip):
    url = f"{server}/studies/{clip[0]}/series/{clip[1]}/instances/{clip[2]}/frames"
    assert get(f"{url}/1,7", integrator).status_code == 404
    assert get(f"{url}/0", integrator).json()["code"] == "invalid_frame_list"
    theirs, unknown = (
        get(f"{url}/1", south_sonographer),
        get(f"{url.replace(clip[2], generate_uid())}/1", south_sonographer),
    )
    assert theirs.status_code == unknown.status_code == 404 and theirs.json() == unknown.json()
