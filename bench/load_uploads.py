"""Concurrent uploads through the API, then a count of what the app kept.

    python bench/load_uploads.py --url http://127.0.0.1:8000 --username api_north --password P \
        [--uploads 200] [--clients 20] [--wait 600]

Creates a patient and a study, sends every upload with its own distinct PNG from a pool of
client threads, waits until every job has finished, and checks through the API that each upload
gave exactly one image, one job and one succeeded prediction: nothing lost, nothing doubled.
Prints the figures and exits non-zero on any loss or duplicate.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import requests
from PIL import Image


def png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (96, 128), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _create_study(api: str, headers: dict[str, str], run_id: str) -> int:
    """A fresh patient and study for this run, so its figures count only its own images."""
    patient = requests.post(
        f"{api}/patients/",
        json={"mrn": f"LOAD-{run_id}", "given_name": "Load", "family_name": "Test"},
        headers=headers,
        timeout=30,
    )
    patient.raise_for_status()
    study = requests.post(
        f"{api}/studies/",
        json={"patient": patient.json()["id"], "exam_date": time.strftime("%Y-%m-%d")},
        headers=headers,
        timeout=30,
    )
    study.raise_for_status()
    return study.json()["id"]


def _study_images(api: str, headers: dict[str, str], study_id: int) -> list[dict]:
    """Every image of the study, following the list's pages."""
    listing = requests.get(
        f"{api}/images/", params={"study": study_id, "limit": 200, "offset": 0}, headers=headers, timeout=60
    ).json()
    images = listing["results"]
    while listing.get("next"):
        listing = requests.get(listing["next"], headers=headers, timeout=60).json()
        images += listing["results"]
    return images


def _wait_until_classified(
    api: str, headers: dict[str, str], *, study_id: int, uploads: int, wait_s: float
) -> list[dict]:
    """The study's images once every upload has a finished job, or as they are after ``wait_s``."""
    deadline = time.monotonic() + wait_s
    images: list[dict] = []
    while time.monotonic() < deadline:
        images = _study_images(api, headers, study_id)
        if len(images) >= uploads and all(i["job"] and i["job"]["status"] in ("SUCCEEDED", "FAILED") for i in images):
            break
        time.sleep(1)
    return images


def run(url: str, username: str, password: str, *, uploads: int, clients: int, wait_s: float) -> dict:
    api = url.rstrip("/") + "/api/v1"
    token = requests.post(f"{api}/auth/token/", json={"username": username, "password": password}, timeout=30)
    token.raise_for_status()
    session_headers = {"Authorization": f"Token {token.json()['token']}"}
    run_id = uuid.uuid4().hex[:8]
    study_id = _create_study(api, session_headers, run_id)
    payloads = [png(index + int(run_id, 16) % 10_000_000) for index in range(uploads)]

    def upload(index: int) -> tuple[int, int, float]:
        started = time.perf_counter()
        response = requests.post(
            f"{api}/studies/{study_id}/images/",
            files={"file": (f"load-{index}.png", payloads[index], "image/png")},
            headers=session_headers,
            timeout=120,
        )
        elapsed = time.perf_counter() - started
        return response.status_code, response.json().get("id", -1) if response.ok else -1, elapsed

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        results = list(pool.map(upload, range(uploads)))
    upload_wall = time.perf_counter() - started
    images = _wait_until_classified(api, session_headers, study_id=study_id, uploads=uploads, wait_s=wait_s)
    all_done = time.perf_counter() - started

    statuses = [status for status, _, _ in results]
    image_ids = [image_id for _, image_id, _ in results]
    latencies = sorted(elapsed for _, _, elapsed in results)
    jobs = {i["id"]: i["job"] for i in images}
    return {
        "uploads": uploads,
        "clients": clients,
        "accepted_202": statuses.count(202),
        "other_statuses": sorted({s for s in statuses if s != 202}),
        "distinct_image_ids": len(set(image_ids) - {-1}),
        "images_in_study": len(images),
        "succeeded": sum(1 for j in jobs.values() if j and j["status"] == "SUCCEEDED"),
        "with_prediction": sum(1 for i in images if i["prediction"]),
        "failed": sum(1 for j in jobs.values() if j and j["status"] == "FAILED"),
        "upload_wall_s": round(upload_wall, 2),
        "uploads_per_s": round(uploads / upload_wall, 1),
        "upload_p50_ms": round(statistics.median(latencies) * 1000),
        "upload_p95_ms": round(latencies[int(0.95 * (len(latencies) - 1))] * 1000),
        "all_classified_s": round(all_done, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--username", default="api_north")
    parser.add_argument("--password", required=True)
    parser.add_argument("--uploads", type=int, default=200)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--wait", type=float, default=600, help="seconds to wait for every job to finish")
    args = parser.parse_args()
    figures = run(args.url, args.username, args.password, uploads=args.uploads, clients=args.clients, wait_s=args.wait)
    for key, value in figures.items():
        print(f"{key:>20}: {value}")
    lossless = (
        figures["accepted_202"] == figures["distinct_image_ids"] == figures["images_in_study"] == args.uploads
        and figures["succeeded"] == figures["with_prediction"] == args.uploads
    )
    print("OK: zero lost, zero duplicates" if lossless else "FAIL: lost or duplicated uploads")
    return 0 if lossless else 1


if __name__ == "__main__":
    sys.exit(main())
