"""A cine loop sent by DCMTK's storescu to the real receiver: stored through the upload's path as one image of
kind cine, with its playback video and a queued job."""

from __future__ import annotations

import io

import av
import pytest

from classifier.models import ClassificationJob
from patients.models import UltrasoundImage
from tests.cine_samples import make_multiframe_dicom
from tests.dicom.conftest import run_dcmtk

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


def played_frames(data: bytes) -> int:
    with av.open(io.BytesIO(data)) as container:
        return sum(1 for _ in container.decode(video=0))
