"""Decoding has a memory budget: refused from the header when too big, shrunk early when large.

A 6300x6300 16-bit TIFF compresses to ~130 KB yet decodes to 76 MB; before the budget, the web
process grew by ~800 MB validating it and the worker by ~760 MB classifying the stored copy.
"""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from patients import services
from patients.imaging import DERIVED_MAX_SIDE, decoded_bytes, inspect_image_bytes
from patients.models import UltrasoundImage
from patients.services import image_upload, image_upload_many
from tests.images import png_bytes

REPO_ROOT = Path(__file__).resolve().parents[2]
PROBE_SIDE = 6300
# Peak RSS growth allowed while decoding the probe, over the same process just before it.
# Measured on the probe, before the budget -> after: web 801 -> 137 MB; worker on the stored copy
# 762 -> 46 MB, on the probe itself (a copy stored before the budget, or training) 761 -> 141 MB.
WEB_PEAK_BOUND_MB = 300
WORKER_PEAK_BOUND_MB = 200


def _save(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _sixteen_bit_tiff(width: int, height: int) -> bytes:
    """16-bit grey ("I;16"), each row one shade, so deflate makes the file tiny."""
    rows = (np.arange(height, dtype=np.uint32) * 65535 // max(1, height - 1)).astype(np.uint16)
    return _save(Image.fromarray(np.repeat(rows[:, None], width, axis=1)), "TIFF", compression="tiff_deflate")


def _png_claiming_size(width: int, height: int) -> bytes:
    """A real 8x8 RGB PNG whose IHDR claims another size (valid CRC): decoding it would fail."""
    data = bytearray(_save(Image.new("RGB", (8, 8), (1, 2, 3)), "PNG"))
    ihdr = bytearray(data[12:29])
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    return bytes(data)


class TestDecodedSizeLimit:
    def test_counts_bytes_per_sample_and_pillows_four_byte_pixels(self):
        def size_of(mode: str) -> int:
            return decoded_bytes(Image.new(mode, (100, 10)))

        assert (size_of("L"), size_of("I;16"), size_of("RGB"), size_of("F")) == (1000, 2000, 4000, 4000)

    def test_refuses_from_the_header_before_decoding(self, settings):
        settings.UPLOAD_MAX_DECODED_BYTES = 64 * 1024 * 1024
        # 5000x4000 RGB is 20 MP (under UPLOAD_MAX_PIXELS) but 76 MB decoded; decoding would say "corrupt".
        with pytest.raises(ValidationError) as caught:
            inspect_image_bytes(_png_claiming_size(5000, 4000))
        assert caught.value.error_dict["file"][0].code == "decoded_too_large"
        assert "76 MB" in caught.value.messages[0] and "64 MB limit" in caught.value.messages[0]

    def test_a_jpeg_is_measured_at_its_draft_scale(self, settings):
        settings.UPLOAD_MAX_DECODED_BYTES = 1_000_000
        data = _save(Image.new("L", (9000, 200), 90), "JPEG")  # 1.8 MB full size, 450 KB at 1/2 scale

        facts = inspect_image_bytes(data)

        assert max(facts.width, facts.height) <= DERIVED_MAX_SIDE

    def test_api_answers_400_naming_the_limit_and_stores_nothing(self, api_client, study, settings, media_root):
        settings.UPLOAD_MAX_DECODED_BYTES = 16 * 1024 * 1024
        probe = SimpleUploadedFile("probe.tif", _sixteen_bit_tiff(3000, 3000), content_type="image/tiff")

        response = api_client.post(f"/api/v1/studies/{study.id}/images/", {"file": [probe]}, format="multipart")

        assert response.status_code == 400
        assert "UPLOAD_MAX_DECODED_BYTES" in response.json()["fields"]["file"][0]
        assert UltrasoundImage.objects.count() == 0
        assert not list(media_root.rglob("*.*"))


class TestLargeImagesAreShrunk:
    def test_sixteen_bit_image_is_stored_8_bit_within_the_side_limit(self, study, sonographer, media_root):
        data = _sixteen_bit_tiff(DERIVED_MAX_SIDE + 100, 30)

        image = image_upload(study=study, data=data, filename="wide.tif", uploaded_by=sonographer).image

        stored = Image.open(media_root / image.file.name)
        assert stored.mode == "L" and stored.size == (image.width, image.height)
        assert image.width == (DERIVED_MAX_SIDE + 100 + 1) // 2  # an integer box reduction by two
        darkest, brightest = stored.getextrema()  # scaled by its range, then box-averaged
        assert darkest < 10 and brightest > 245

    def test_orientation_is_applied_after_shrinking(self, study, sonographer, media_root):
        exif = Image.Exif()
        exif[0x0112] = 6  # rotate 90 on display
        data = _save(Image.new("RGB", (9000, 100), (200, 10, 10)), "JPEG", exif=exif.tobytes())

        image = image_upload(study=study, data=data, filename="tall.jpg", uploaded_by=sonographer).image

        assert image.width < image.height <= DERIVED_MAX_SIDE


class TestSeveralFilesAreDecodedOnce:
    def test_each_file_is_inspected_once_and_stored(self, study, sonographer, media_root, monkeypatch):
        inspected = []

        def counting_inspect(data: bytes):
            inspected.append(data)
            return inspect_image_bytes(data)

        monkeypatch.setattr(services, "inspect_image_bytes", counting_inspect)
        files = [(png_bytes(seed=1), "a.png"), (png_bytes(seed=2), "b.png")]

        results = image_upload_many(study=study, files=files, uploaded_by=sonographer)

        assert inspected == [data for data, _ in files]
        assert [result.created for result in results] == [True, True]
        for result, (data, _) in zip(results, files, strict=True):
            assert (media_root / result.image.file.name).read_bytes() == inspect_image_bytes(data).derived_png


@pytest.fixture(scope="module")
def probe_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("probe") / "probe.tif"
    path.write_bytes(_sixteen_bit_tiff(PROBE_SIDE, PROBE_SIDE))
    return path


# Run in a fresh interpreter: warm up on a tiny image (plugins, code paths), restart the peak RSS,
# run the real code on argv[1] and print how far the peak rose: what that process needs for it.
# VmHWM belongs to the process's own memory map; ru_maxrss would not do, since a child inherits
# it from its parent (pytest, holding the probe's pixels) across fork and exec.
_MEASURE = """
import io, sys
import numpy as np
from PIL import Image

def peak_mb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024

def peak_growth_mb(body, warm_up):
    body(warm_up)
    data = open(sys.argv[1], "rb").read()
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")  # the peak restarts from the current RSS
    baseline = peak_mb()
    body(data)
    return peak_mb() - baseline

def encoded(image, fmt, **options):
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()
"""

_WEB_SCRIPT = (
    _MEASURE
    + """
import django
django.setup()
from patients.imaging import inspect_image_bytes

def web_body(data):
    open(sys.argv[2], "wb").write(inspect_image_bytes(data).derived_png)

tiny = encoded(Image.fromarray(np.zeros((8, 8), np.uint16)), "TIFF", compression="tiff_deflate")
print(peak_growth_mb(web_body, tiny))
"""
)

_WORKER_SCRIPT = (
    _MEASURE
    + """
from classifier.ml.gradcam import heatmap_for_image, overlay_png
from classifier.ml.preprocessing import load_image, preprocess, to_rgb

def worker_body(data):
    # classification_job_run: load_image, classify (preprocess), heatmap_png (Grad-CAM mapped
    # back onto the image, then the overlay); only the model's forward pass is replaced by a map.
    image = load_image(data)
    preprocess(image, 224)
    image = to_rgb(image)
    preprocess(image, 224)
    cam = np.random.default_rng(0).random((7, 7), dtype=np.float32)
    overlay_png(image, heatmap_for_image(cam, image.size, 224))

print(peak_growth_mb(worker_body, encoded(Image.new("L", (8, 8)), "PNG")))
"""
)


def _peak_growth_mb(script: str, *args: str) -> float:
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "fetalsite.settings.test", "PYTHONPATH": str(REPO_ROOT)}
    completed = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return float(completed.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(sys.platform != "linux", reason="reads the peak RSS from /proc")
class TestPeakMemoryOfTheProbe:
    def test_web_and_worker_stay_within_their_bounds(self, probe_path, tmp_path):
        assert probe_path.stat().st_size < 1024 * 1024  # tiny on disk, like the probe
        assert django_settings.UPLOAD_MAX_DECODED_BYTES >= PROBE_SIDE * PROBE_SIDE * 2  # still accepted
        stored_copy = tmp_path / "derived.png"

        web_mb = _peak_growth_mb(_WEB_SCRIPT, str(probe_path), str(stored_copy))
        worker_mb = _peak_growth_mb(_WORKER_SCRIPT, str(stored_copy))
        worker_on_probe_mb = _peak_growth_mb(_WORKER_SCRIPT, str(probe_path))

        assert web_mb < WEB_PEAK_BOUND_MB, f"web process grew {web_mb:.0f} MB"
        assert worker_mb < WORKER_PEAK_BOUND_MB, f"worker grew {worker_mb:.0f} MB"
        assert worker_on_probe_mb < WORKER_PEAK_BOUND_MB, f"worker grew {worker_on_probe_mb:.0f} MB"
        assert max(Image.open(stored_copy).size) <= DERIVED_MAX_SIDE
