"""Cheap per-image work (issue 20): an upload is decoded once, its display PNG is encoded once and served as
stored, and what the model sees from the stored file is what training and evaluation see from the upload."""

from __future__ import annotations

import csv
import io

import numpy as np
import PIL.Image
import pytest
from django.core.files.storage import Storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from classifier.ml.preprocessing import load_image, preprocess
from patients import services
from patients.imaging import inspect_image_bytes
from tests.api.conftest import model_version  # noqa: F401 (a fixture)
from tests.cine_samples import DATA, has_real_images
from tests.images import image_bytes, photo_bytes, png_bytes


@pytest.fixture
def decodes(monkeypatch) -> list[str]:
    """Every PIL.Image.open call, by the caller's file: the real function runs, only counted."""
    calls, real_open = [], PIL.Image.open

    def counting_open(*args, **kwargs):
        import inspect

        calls.append(inspect.stack()[1].filename)
        return real_open(*args, **kwargs)

    monkeypatch.setattr(PIL.Image, "open", counting_open)
    return calls


def _files() -> list[SimpleUploadedFile]:
    return [
        SimpleUploadedFile("a.png", png_bytes(seed=1), content_type="image/png"),
        SimpleUploadedFile("b.jpg", photo_bytes(seed=2), content_type="image/jpeg"),
        SimpleUploadedFile("c.tif", image_bytes("TIFF", seed=3), content_type="image/tiff"),
    ]


class TestOneDecodePerFile:
    def test_a_multi_file_api_upload_opens_each_file_once(self, api_client, study, model_version, decodes):  # noqa: F811
        response = api_client.post(f"/api/v1/studies/{study.id}/images/", {"file": _files()}, format="multipart")

        assert response.status_code == 202
        assert [result["created"] for result in response.json()["results"]] == [True, True, True]
        assert len(decodes) == 3, decodes

    def test_a_bad_file_among_several_stops_before_a_second_pass(self, api_client, study, model_version, decodes):  # noqa: F811
        files = [*_files(), SimpleUploadedFile("d.png", b"not an image", content_type="image/png")]

        response = api_client.post(f"/api/v1/studies/{study.id}/images/", {"file": files}, format="multipart")

        assert response.status_code == 400
        assert len(decodes) == 4, decodes

    def test_the_page_upload_opens_its_file_once(self, client, sonographer, study, decodes):
        client.force_login(sonographer)

        response = client.post(
            reverse("study-upload", args=[study.id]), {"file": _files()[1]}, HTTP_X_REQUESTED_WITH="fetch"
        )

        assert response.status_code == 202
        assert len(decodes) == 1, decodes


class TestDisplayRendition:
    def test_a_tiff_preview_is_the_stored_png_unchanged(self, client, sonographer, study, decodes):
        image = services.image_upload(
            study=study, data=image_bytes("TIFF", seed=4), filename="scan.tif", uploaded_by=sonographer
        ).image
        client.force_login(sonographer)
        decodes.clear()

        response = client.get(reverse("image-preview", args=[image.id]))

        assert response["Content-Type"] == "image/png"
        assert b"".join(response.streaming_content) == image.file.read()
        assert decodes == []  # served as stored: no decode, no re-encode

    def test_the_display_png_keeps_every_pixel(self):
        for data in (png_bytes(300, 200, seed=5), photo_bytes(seed=6), image_bytes("BMP", seed=7)):
            facts = inspect_image_bytes(data)

            with PIL.Image.open(io.BytesIO(data)) as original, PIL.Image.open(io.BytesIO(facts.derived_png)) as shown:
                assert np.array_equal(np.asarray(original.convert(shown.mode)), np.asarray(shown))


def _real_images(count: int) -> list[bytes]:
    with (DATA / "manifest.csv").open() as handle:
        rows = [row for row in csv.DictReader(handle) if row["split"] == "test"]
    return [(DATA / row["file"]).read_bytes() for row in rows[:: max(1, len(rows) // count)][:count]]


@pytest.mark.skipif(not has_real_images(), reason="the fetal-planes data set is not on this machine")
def test_the_worker_sees_what_training_and_evaluation_see():
    """The worker classifies the stored display PNG; training and evaluation read the uploaded file. Both go
    through load_image and preprocess: the model's input must be the same array, to the last bit."""
    images = _real_images(12)
    for data in images:
        from_upload = preprocess(load_image(data), 224)
        from_stored = preprocess(load_image(inspect_image_bytes(data).derived_png), 224)

        assert from_stored.dtype == np.float32 and from_stored.shape == (224, 224, 3)
        assert np.array_equal(from_upload, from_stored)
    assert {PIL.Image.open(io.BytesIO(data)).mode for data in images} >= {"L"}


class TestCardThumbnail:
    def test_a_large_image_gets_a_thumbnail_made_once_and_served_as_stored(
        self, client, sonographer, study, media_root, decodes
    ):
        image = services.image_upload(
            study=study, data=png_bytes(1600, 1200, seed=8), filename="big.png", uploaded_by=sonographer
        ).image
        client.force_login(sonographer)
        url = reverse("image-thumbnail", args=[image.id])
        decodes.clear()

        first = b"".join(client.get(url).streaming_content)
        made = len(decodes)
        second = client.get(url)

        assert made == 1 and len(decodes) == 1, decodes  # the second view decodes nothing
        assert second["Content-Type"] == "image/png"
        assert b"".join(second.streaming_content) == first
        with PIL.Image.open(io.BytesIO(first)) as thumbnail:
            assert thumbnail.size == (640, 480)
        assert [path.name for path in (media_root / "thumbs").rglob("*.png")] == [image.file.name.rsplit("/", 1)[1]]

    def test_a_small_image_is_its_own_thumbnail(self, client, sonographer, study, media_root):
        image = services.image_upload(
            study=study, data=png_bytes(seed=9), filename="s.png", uploaded_by=sonographer
        ).image
        client.force_login(sonographer)

        response = client.get(reverse("image-thumbnail", args=[image.id]))

        assert b"".join(response.streaming_content) == image.file.read()
        assert not (media_root / "thumbs").exists()

    def test_the_card_shows_the_thumbnail_and_enlarges_to_the_full_image(self, client, sonographer, study):
        image = services.image_upload(study=study, data=png_bytes(seed=10), filename="c.png", uploaded_by=sonographer)
        client.force_login(sonographer)

        html = client.get(reverse("study-detail", args=[study.id])).content.decode()

        assert f'class="photo" src="{reverse("image-thumbnail", args=[image.image.id])}"' in html
        assert f'class="enlarge" href="{reverse("image-preview", args=[image.image.id])}"' in html

    def test_another_clinics_thumbnail_is_404(self, client, sonographer, south_sonographer, study):
        image = services.image_upload(study=study, data=png_bytes(seed=11), filename="n.png", uploaded_by=sonographer)
        client.force_login(south_sonographer)

        assert client.get(reverse("image-thumbnail", args=[image.image.id])).status_code == 404


class TestRevalidation:
    @pytest.mark.parametrize("route", ["image-file", "image-preview", "image-thumbnail"])
    def test_the_browsers_revalidation_is_a_304_read_from_nothing(self, route, client, sonographer, study, monkeypatch):
        image = services.image_upload(
            study=study, data=png_bytes(1600, 1200, seed=12), filename="r.png", uploaded_by=sonographer
        ).image
        client.force_login(sonographer)
        url = reverse(route, args=[image.id])
        first = client.get(url)
        b"".join(first.streaming_content)
        opened = []
        real_open = Storage.open  # every storage's open (local disk, S3) goes through the base class's
        monkeypatch.setattr(Storage, "open", lambda self, *a, **k: opened.append(a) or real_open(self, *a, **k))

        again = client.get(url, HTTP_IF_NONE_MATCH=first["ETag"])

        assert first.status_code == 200 and first["ETag"]
        assert again.status_code == 304 and again.content == b""
        assert again["ETag"] == first["ETag"] and again["Cache-Control"] == "private, no-cache"
        assert opened == []

    def test_another_clinic_gets_a_404_whatever_it_sends(self, client, sonographer, south_sonographer, study):
        image = services.image_upload(study=study, data=png_bytes(seed=13), filename="o.png", uploaded_by=sonographer)
        client.force_login(sonographer)
        etag = client.get(reverse("image-file", args=[image.image.id]))["ETag"]
        client.force_login(south_sonographer)

        assert client.get(reverse("image-file", args=[image.image.id]), HTTP_IF_NONE_MATCH=etag).status_code == 404
