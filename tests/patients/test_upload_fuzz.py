"""A few thousand mutated image files through the upload service and the worker's code path.

Every file is either stored and classified, or refused with a ValidationError (a 4xx at the
interfaces); nothing else may happen, and no file may be left on disk without its record.
"""

import io
import random

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from PIL import Image

from classifier.models import ClassificationJob
from classifier.services import classification_job_run
from patients.models import UltrasoundImage
from patients.services import image_upload

MUTANTS = 2000


def _seed_files() -> list[bytes]:
    rng = np.random.default_rng(3)
    picture = Image.fromarray(rng.integers(0, 255, (40, 48), dtype=np.uint8))
    seeds = []
    for fmt, mode in [("PNG", "L"), ("PNG", "RGB"), ("JPEG", "L"), ("JPEG", "RGB"), ("BMP", "RGB"), ("TIFF", "L")]:
        buffer = io.BytesIO()
        picture.convert(mode).save(buffer, format=fmt)
        seeds.append(buffer.getvalue())
    return seeds


def _mutate(data: bytes, others: list[bytes], rng: random.Random) -> bytes:
    data = bytearray(data)
    kind = rng.choice(["flip", "truncate", "swap_header", "splice", "repeat"])
    if kind == "flip":
        for _ in range(rng.randint(1, 24)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif kind == "truncate":
        data = data[: rng.randrange(len(data))]
    elif kind == "swap_header":
        donor = rng.choice(others)
        cut = rng.randint(2, 64)
        data = bytearray(donor[:cut]) + data[cut:]
    elif kind == "splice":
        at = rng.randrange(len(data))
        data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    else:
        start = rng.randrange(len(data))
        data += data[start : start + rng.randint(1, 512)]
    return bytes(data)


@pytest.mark.e2e
def test_mutated_files_are_stored_and_classified_or_refused(study, sonographer, active_model, media_root):
    rng = random.Random(20261127)
    seeds = _seed_files()
    outcomes = {"stored": 0, "duplicate": 0, "refused": 0}
    for _ in range(MUTANTS):
        data = _mutate(rng.choice(seeds), seeds, rng)
        try:
            result = image_upload(study=study, data=data, filename="fuzz.bin", uploaded_by=sonographer)
        except ValidationError as error:
            assert "file" in error.message_dict
            outcomes["refused"] += 1
            continue
        outcomes["stored" if result.created else "duplicate"] += 1
        if result.created:
            job = classification_job_run(job_id=result.image.jobs.get().id)
            assert job.status == ClassificationJob.Status.SUCCEEDED, job.error

    print(f"fuzz outcomes over {MUTANTS} mutants: {outcomes}")
    assert outcomes["stored"] > 50 and outcomes["refused"] > 50  # the fuzzer reached both paths
    records = {name for pair in UltrasoundImage.objects.values_list("file", "original") for name in pair}
    on_disk = {
        str(path.relative_to(media_root))
        for folder in ("images", "originals")
        for path in (media_root / folder).rglob("*")
        if path.is_file()
    }
    assert on_disk == records, "every stored file (rendition or original) has its record and every record its file"
