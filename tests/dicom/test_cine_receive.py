"""A cine loop sent by DCMTK's storescu to the real receiver, or by STOW-RS with dicomweb-client: stored through
the upload's path as one image of kind cine, with its playback video and a queued job; over the limits, refused
with the clip's code and nothing stored."""

from __future__ import annotations

import io

import av
import pytest

from classifier.models import ClassificationJob
from patients.models import UltrasoundImage
from tests.cine_samples import make_multiframe_dicom
from tests.dicom.conftest import run_dcmtk
from tests.dicom.dicomweb_clients import client_for, dataset, stow

pytestmark = pytest.mark.django_db(transaction=True)


def test_storescu_stores_a_multi_frame_dicom_as_a_cine(receiver_port, north, tmp_path):
    path = tmp_path / "loop.dcm"
    path.write_bytes(make_multiframe_dicom(12, patient_id="NET-CINE-1", frame_time_ms=40))

    result = run_dcmtk("storescu", receiver_port, path)

    assert result.returncode == 0, result.stdout + result.stderr
    image = UltrasoundImage.objects.get(study__patient__mrn="NET-CINE-1", study__patient__clinic=north)
    assert (image.kind, image.frame_count, image.frame_rate, image.dicom.number_of_frames) == ("cine", 12, 25.0, 12)
    assert played_frames(image.playback.read()) == 12
    assert ClassificationJob.objects.filter(image=image).count() == 1


def test_stow_rs_stores_a_multi_frame_dicom_as_a_cine(server, integrator):
    data = make_multiframe_dicom(10, patient_id="WEB-CINE-1", frame_time_ms=50)

    response = client_for(server, integrator).store_instances(datasets=[dataset(data)])

    assert response.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == dataset(data).SOPInstanceUID
    image = UltrasoundImage.objects.get(study__patient__mrn="WEB-CINE-1")
    assert (image.kind, image.frame_count, image.frame_rate, image.original.read()) == ("cine", 10, 20.0, data)
    assert played_frames(image.playback.read()) == 10


def test_stow_rs_refuses_a_clip_over_the_frame_limit_and_stores_nothing(server, integrator, settings, media_root):
    settings.CINE_MAX_FRAMES = 8

    response = stow(server, integrator, [make_multiframe_dicom(9, patient_id="WEB-CINE-2")])

    assert response.status_code == 409, response.text[:500]  # every instance failed
    failed = response.json()["00081198"]["Value"][0]  # Failed SOP Sequence: the reason is the C-STORE status
    assert failed["00081197"]["Value"] == [0xC004]
    assert not UltrasoundImage.objects.exists()
    assert not [p for p in media_root.rglob("*") if p.is_file()] if media_root.exists() else True


def played_frames(data: bytes) -> int:
    with av.open(io.BytesIO(data)) as container:
        return sum(1 for _ in container.decode(video=0))
