import io

import numpy as np
import pytest
from PIL import Image

from classifier.ml.data import load_array, read_manifest
from classifier.ml.preprocessing import letterbox_box, load_image, preprocess


def _png_bytes(image: Image.Image, **save_args) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=save_args.pop("format", "PNG"), **save_args)
    return buffer.getvalue()


class TestLoadImage:
    @pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "I;16", "LA", "CMYK"])
    def test_converts_any_mode_to_rgb(self, mode):
        fmt = "JPEG" if mode == "CMYK" else "TIFF" if mode == "I;16" else "PNG"
        image = Image.new(mode, (40, 30))

        loaded = load_image(_png_bytes(image, format=fmt))

        assert loaded.mode == "RGB"
        assert loaded.size == (40, 30)

    def test_applies_exif_orientation(self):
        image = Image.new("RGB", (40, 20))
        exif = Image.Exif()
        exif[0x0112] = 6  # rotate 90° clockwise on display

        loaded = load_image(_png_bytes(image, format="JPEG", exif=exif))

        assert loaded.size == (20, 40)

    def test_scales_16_bit_grey_by_its_range(self):
        array = np.array([[0, 1000], [2000, 4000]], dtype=np.uint16)
        image = Image.fromarray(array)

        loaded = np.asarray(load_image(_png_bytes(image)))

        assert loaded[..., 0].min() == 0
        assert loaded[..., 0].max() == 255


class TestPreprocess:
    def test_letterboxes_to_a_float_square(self):
        image = Image.new("RGB", (400, 200), (200, 100, 50))

        array = preprocess(image, 64)

        assert array.shape == (64, 64, 3)
        assert array.dtype == np.float32
        assert array[0, 0].tolist() == [0, 0, 0]  # padding above
        assert array[32, 32].tolist() == [200, 100, 50]
        assert letterbox_box(400, 200, 64) == (0, 16, 64, 32)

    def test_training_and_worker_see_the_same_pixels(self, data_dir):
        """The training loader and the worker's bytes -> load_image -> preprocess path agree exactly."""
        records = [r for r in read_manifest(data_dir) if r.split == "test"][:6]

        training_batch = load_array(data_dir, records, 224)
        worker_batch = np.stack([preprocess(load_image((data_dir / r.file).read_bytes()), 224) for r in records])

        np.testing.assert_array_equal(training_batch.astype(np.float32), worker_batch)

    def test_rejects_a_file_whose_hash_differs(self, data_dir, tmp_path):
        record = read_manifest(data_dir)[0]
        (tmp_path / record.file).parent.mkdir(parents=True)
        (tmp_path / record.file).write_bytes(_png_bytes(Image.new("RGB", (8, 8))))

        with pytest.raises(ValueError, match="sha256"):
            load_array(tmp_path, [record], 32)
