"""Hostile and awkward files: refused cleanly, or stored as a clean, metadata-free copy."""

import io
import struct
import zlib

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from PIL import Image, ImageCms

from patients.imaging import inspect_image_bytes
from patients.models import UltrasoundImage
from patients.services import image_upload
from tests.images import png_bytes


def _save(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _png_with_header_size(width: int, height: int) -> bytes:
    """A real 8x8 PNG whose IHDR claims another size (with a valid CRC)."""
    data = bytearray(png_bytes(8, 8))
    ihdr = bytearray(data[12:29])  # type + 13 bytes of IHDR data
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    return bytes(data)


class TestRefused:
    def test_decompression_bomb_is_refused_from_its_header(self):
        with pytest.raises(ValidationError) as caught:
            inspect_image_bytes(_png_with_header_size(100_000, 100_000))
        assert caught.value.error_dict["file"][0].code == "too_many_pixels"

    def test_animated_png_is_refused(self):
        frames = [Image.new("L", (16, 16), shade) for shade in (0, 128, 255)]
        data = _save(frames[0], "PNG", save_all=True, append_images=frames[1:])
        with pytest.raises(ValidationError, match="several frames"):
            inspect_image_bytes(data)

    def test_multi_page_tiff_is_refused(self):
        pages = [Image.new("L", (16, 16), shade) for shade in (10, 200)]
        data = _save(pages[0], "TIFF", save_all=True, append_images=pages[1:])
        with pytest.raises(ValidationError, match="several frames"):
            inspect_image_bytes(data)

    @pytest.mark.parametrize(
        "data",
        [b"%PDF-1.4 not an image", b"<html><script>alert(1)</script></html>", b"PK\x03\x04" + b"\x00" * 40],
        ids=["pdf", "html", "zip"],
    )
    def test_non_images_with_an_image_name_are_refused(self, data):
        with pytest.raises(ValidationError, match="not an image"):
            inspect_image_bytes(data)


class TestStoredCopy:
    def test_polyglot_payload_never_reaches_the_display_rendition(self, study, sonographer, media_root):
        payload = b"<html><script>alert('x')</script></html>PK\x03\x04zip-payload"
        image = image_upload(study=study, data=png_bytes() + payload, filename="p.png", uploaded_by=sonographer).image
        stored = (media_root / image.file.name).read_bytes()
        assert b"script" not in stored and b"zip-payload" not in stored
        # The original is kept as sent (served only as a sandboxed attachment: tests/api/test_originals.py).
        assert (media_root / image.original.name).read_bytes() == png_bytes() + payload
        assert image.byte_size == len(png_bytes() + payload)

    def test_exif_and_text_metadata_are_stripped(self, study, sonographer, media_root):
        exif = Image.Exif()
        exif[0x013B] = "Jane Doe, MRN 12345"  # Artist
        exif[0x0112] = 6  # orientation: rotate 90
        original = Image.fromarray(np.random.default_rng(0).integers(0, 255, (30, 40, 3), dtype=np.uint8))
        data = _save(original, "JPEG", exif=exif.tobytes())
        image = image_upload(study=study, data=data, filename="j.jpg", uploaded_by=sonographer).image
        stored_bytes = (media_root / image.file.name).read_bytes()
        assert b"Jane Doe" not in stored_bytes
        stored = Image.open(io.BytesIO(stored_bytes))
        assert not stored.getexif() and stored.size == (30, 40)  # turned upright, then EXIF dropped
        assert (image.format, image.width, image.height) == ("JPEG", 30, 40)

    def test_icc_profile_is_stripped(self, study, sonographer, media_root):
        profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
        data = _save(Image.new("RGB", (40, 30), (9, 99, 199)), "PNG", icc_profile=profile)
        image = image_upload(study=study, data=data, filename="icc.png", uploaded_by=sonographer).image
        stored = Image.open(media_root / image.file.name)
        assert "icc_profile" not in stored.info

    @pytest.mark.parametrize(
        ("make", "fmt", "stored_mode"),
        [
            (lambda: Image.fromarray(np.linspace(0, 65535, 64 * 48).reshape(48, 64).astype(np.uint16)), "PNG", "L"),
            (lambda: Image.new("CMYK", (40, 30), (10, 200, 30, 0)), "JPEG", "RGB"),
            (lambda: Image.new("RGBA", (40, 30), (255, 0, 0, 128)), "PNG", "RGB"),
            (lambda: Image.new("RGB", (40, 30), (9, 99, 199)).convert("P"), "BMP", "RGB"),
        ],
        ids=["16-bit-grey", "cmyk-jpeg", "rgba", "palette-bmp"],
    )
    def test_unusual_modes_are_converted_not_crashed_on(self, study, sonographer, media_root, make, fmt, stored_mode):
        image = image_upload(study=study, data=_save(make(), fmt), filename="m", uploaded_by=sonographer).image
        stored = Image.open(media_root / image.file.name)
        assert stored.mode == stored_mode and stored.size == (image.width, image.height)
        assert UltrasoundImage.objects.count() == 1
