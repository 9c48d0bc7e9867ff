import io

import pytest
from django.core.exceptions import ValidationError
from PIL import Image

from patients.imaging import inspect_image_bytes, sanitize_filename
from tests.images import image_bytes, png_bytes


class TestInspectImageBytes:
    @pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "TIFF"])
    def test_accepts_the_four_formats_by_content(self, fmt):
        facts = inspect_image_bytes(image_bytes(fmt, width=40, height=30))
        assert (facts.format, facts.width, facts.height) == (fmt, 40, 30)
        assert len(facts.sha256) == 64

    @pytest.mark.parametrize(
        ("data", "code"),
        [
            (b"", "empty"),
            (b"hello, this is text and not an image", "not_an_image"),
            (png_bytes()[:200], "corrupt"),
        ],
        ids=["empty", "text", "truncated-png"],
    )
    def test_rejects_bad_bytes_with_a_clear_message(self, data, code):
        with pytest.raises(ValidationError) as caught:
            inspect_image_bytes(data)
        assert caught.value.error_dict["file"][0].code == code
        assert caught.value.message_dict["file"][0].endswith(".")

    def test_rejects_an_unsupported_format(self):
        buffer = io.BytesIO()
        Image.new("RGB", (8, 8)).save(buffer, format="GIF")
        with pytest.raises(ValidationError, match="Unsupported image type GIF"):
            inspect_image_bytes(buffer.getvalue())

    def test_rejects_more_pixels_than_allowed_before_decoding(self, settings):
        settings.UPLOAD_MAX_PIXELS = 100
        with pytest.raises(ValidationError, match="more than this server accepts"):
            inspect_image_bytes(png_bytes(20, 20))

    def test_rejects_files_over_the_byte_limit(self, settings):
        settings.UPLOAD_MAX_BYTES = 10
        with pytest.raises(ValidationError, match="larger than"):
            inspect_image_bytes(png_bytes())


class TestSanitizeFilename:
    @pytest.mark.parametrize(
        ("raw", "expected"),
        [
            ("../../etc/passwd", "passwd"),
            ("C:\\scans\\brain.png", "brain.png"),
            ("scan\x00.png", "scan.png"),
            (b"caf\xe9.png", "caf.png"),
            (".hidden.png", "hidden.png"),
            (None, ""),
        ],
    )
    def test_keeps_only_a_safe_display_name(self, raw, expected):
        assert sanitize_filename(raw) == expected

    def test_shortens_very_long_names_keeping_the_extension(self):
        name = sanitize_filename("a" * 500 + ".png")
        assert len(name) <= 120 and name.endswith(".png")
