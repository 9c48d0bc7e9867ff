"""Head measurement speed: the segmenter alone per image, and upload → measurement through the running app.

    python bench/bench_biometry.py [--data ../shared/data/hc18] [--images N] [--runtimes litert,keras]
        [--app-images M] [--card models/fetal-head-v2.card.json] [--settings fetalsite.settings.production]
        [--postgres-server postgres://postgres@127.0.0.1:5432/postgres] [--broker redis://127.0.0.1:6379/12]

1. The segmenter alone, in this process, loaded as the worker loads it (``HeadSegmenter.from_card``, the worker's
   thread count ``INFERENCE_THREADS``, default 2): for each runtime, after three warm-up images, every image of the
   HC18 test split (or the first ``--images``) decoded as the worker decodes it (``load_image``) and measured:
   segmentation with the flip, the probabilities back at the image's size, the ellipse fit and HC/BPD/OFD. Median
   and p90 of the whole (``HeadFinding.total_ms`` plus the measurement) and of the network alone, and the HC's
   mean absolute difference to the sonographer's on those images, as a check that the bench measured the real
   thing. The bar (issue 21): 100 ms median for the whole on this 2-core machine.
2. Through the app (``--app-images`` > 0): a throwaway PostgreSQL database, gunicorn as the Procfile runs it and
   one Celery worker (one process, ``-Q classify,measure``), as bench/bench_pipeline.py starts them. HC18 test
   images are uploaded one at a time through ``POST /api/v1/studies/{id}/images/`` with their ``pixel_size_mm``;
   each is awaited until its measurement is saved (or its job failed, or the classifier said it is not a brain
   plane: then no measurement is due, and the bench counts it). Upload accepted → prediction saved → measurement
   saved, from the database's timestamps (one host's clock), median and p95; and the HC that reached the API
   against the sonographer's.

Prints the machine, the commit and the load average, and ends with one line of figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import bench_pipeline as pipeline

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
DATA_DIR = REPO_ROOT.parent / "shared" / "data" / "hc18"
CARD = REPO_ROOT / "models" / "fetal-head-v2.card.json"
WARM_UP = 3
BAR_MS = 100.0


def test_records(data_dir: Path, count: int | None) -> list:
    from biometry.ml.seg_data import of_split, read_manifest

    if not (data_dir / "manifest.csv").is_file():
        raise SystemExit(f"{data_dir}/manifest.csv is missing: the benchmark measures real HC18 images (--data)")
    return of_split(read_manifest(data_dir), "test")[:count]


def segmenter_alone(args: argparse.Namespace, runtime: str, records: list) -> dict:
    """Every record measured by a segmenter of ``runtime``: per-image milliseconds and the HC's error."""
    from biometry.ml.ellipse import head_measurement
    from biometry.ml.segmentation import HeadSegmenter
    from classifier.ml.preprocessing import load_image

    threads = int(os.environ.get("INFERENCE_THREADS", "2"))
    started = time.perf_counter()
    segmenter = HeadSegmenter.from_card(args.card, runtime=runtime, num_threads=threads)
    load_s = time.perf_counter() - started
    blobs = [(record, (args.data / record.file).read_bytes()) for record in records]
    for _, data in blobs[:WARM_UP]:
        segmenter.find_head(load_image(data))
    totals, networks, errors = [], [], []
    for record, data in blobs:
        started = time.perf_counter()
        finding = segmenter.find_head(load_image(data))
        ellipse = finding.fit.ellipse
        measured = head_measurement(ellipse, pixel_size_mm=record.pixel_size_mm) if ellipse else None
        totals.append((time.perf_counter() - started) * 1000)
        networks.append(finding.inference_ms)
        if measured is not None:
            errors.append(abs(measured.hc_mm - record.hc_mm))
    return {
        "runtime": runtime,
        "threads": threads,
        "load_s": load_s,
        "median_ms": statistics.median(totals),
        "p90_ms": pipeline.percentile(totals, 0.9),
        "network_median_ms": statistics.median(networks),
        "hc_mae_mm": statistics.fmean(errors) if errors else float("nan"),
        "fitted": len(errors),
        "images": len(blobs),
    }


def wait_for_measurement(image_id: int, *, timeout_s: float) -> dict:
    """Poll the database until the image is measured, its job failed, or its plane turned out not to be brain."""
    from biometry.models import Measurement, MeasurementJob
    from classifier.models import Prediction

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        measurement = Measurement.objects.filter(image_id=image_id).select_related("image").first()
        if measurement is not None:
            prediction = Prediction.objects.get(job__image_id=image_id)
            return {
                "uploaded": measurement.image.uploaded_at,
                "predicted": prediction.created_at,
                "measured": measurement.created_at,
                "hc_mm": measurement.hc_mm,
            }
        failed = MeasurementJob.objects.filter(image_id=image_id, status=MeasurementJob.Status.FAILED).first()
        if failed is not None:
            raise SystemExit(f"the measurement of image {image_id} failed: {failed.error}")
        prediction = Prediction.objects.filter(job__image_id=image_id).first()
        if prediction is not None and prediction.label != "fetal_brain":
            return {"not_brain": prediction.label}
        time.sleep(0.02)
    raise SystemExit(f"image {image_id} was not measured within {timeout_s:.0f} s")


def through_app(args: argparse.Namespace, records: list) -> dict:
    with (
        tempfile.TemporaryDirectory(prefix="bench-biometry-") as tmp,
        pipeline.throwaway_database(args.postgres_server) as database_url,
    ):
        args.runtime = None
        os.environ["BIOMETRY_MODEL_CARD"] = str(args.card.resolve())  # the worker measures with the bench's model
        env = pipeline.configure_django(args, database_url=database_url, media_root=Path(tmp) / "media")
        pipeline.prepare_app(Path(tmp))
        pipeline.purge_queues()
        with (
            pipeline.gunicorn(env, processes=1, log_dir=Path(tmp)) as (url, _),
            pipeline.celery_worker(env, concurrency=1, queues="classify,measure", log_dir=Path(tmp)),
        ):
            api = pipeline.log_in(url)
            study_id = api.study()
            rows = []
            for record in records:
                response = api.session().post(
                    f"{url}/api/v1/studies/{study_id}/images/",
                    files={"file": (Path(record.file).name, (args.data / record.file).read_bytes())},
                    data={"pixel_size_mm": str(record.pixel_size_mm)},
                    headers=api.headers,
                    timeout=120,
                )
                if response.status_code != 202:
                    raise SystemExit(f"upload of {record.file}: {response.status_code} {response.text[:300]}")
                rows.append((record, wait_for_measurement(response.json()["id"], timeout_s=300)))
    return app_figures(rows)


def app_figures(rows: list) -> dict:
    measured = [(record, row) for record, row in rows if "measured" in row]
    # The first upload pays the worker's model loads (classifier and segmenter): reported apart.
    first, steady = measured[:1], measured[1:] or measured
    to_measure = [(row["measured"] - row["uploaded"]).total_seconds() for _, row in steady]
    after_prediction = [(row["measured"] - row["predicted"]).total_seconds() for _, row in steady]
    errors = [abs(row["hc_mm"] - record.hc_mm) for record, row in measured if row["hc_mm"] is not None]
    return {
        "uploaded": len(rows),
        "measured": len(measured),
        "not_brain": len(rows) - len(measured),
        "first_s": (first[0][1]["measured"] - first[0][1]["uploaded"]).total_seconds() if first else float("nan"),
        "median_s": statistics.median(to_measure) if to_measure else float("nan"),
        "p95_s": pipeline.percentile(to_measure, 0.95) if to_measure else float("nan"),
        "after_prediction_median_s": statistics.median(after_prediction) if after_prediction else float("nan"),
        "hc_mae_mm": statistics.fmean(errors) if errors else float("nan"),
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA_DIR, help="the HC18 folder (manifest.csv)")
    parser.add_argument("--card", type=Path, default=CARD, help="the segmentation model's card")
    parser.add_argument("--images", type=int, default=None, help="test images for the segmenter alone (all)")
    parser.add_argument("--runtimes", default="litert,keras", help="runtimes for the segmenter alone")
    parser.add_argument("--app-images", type=int, default=20, help="uploads through the app (0: skip)")
    parser.add_argument("--settings", default="fetalsite.settings.production")
    parser.add_argument("--postgres-server", default="postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/12", help="a Redis database of its own")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    pipeline.describe_machine()
    records = test_records(args.data, args.images)
    alone = []
    for runtime in [r for r in args.runtimes.split(",") if r]:
        figures = segmenter_alone(args, runtime, records)
        alone.append(figures)
        print(
            f"1. segmenter alone ({runtime}, {figures['threads']} threads, loaded in {figures['load_s']:.1f} s): "
            f"{figures['median_ms']:.1f} ms median, {figures['p90_ms']:.1f} ms p90 per image (network "
            f"{figures['network_median_ms']:.1f} ms); HC MAE {figures['hc_mae_mm']:.2f} mm on "
            f"{figures['fitted']}/{figures['images']} images; bar {BAR_MS:.0f} ms: "
            + ("held" if figures["median_ms"] <= BAR_MS else "NOT held")
        )
    app = through_app(args, test_records(args.data, args.app_images)) if args.app_images else None
    if app is not None:
        print(
            f"2. through the app: {app['measured']}/{app['uploaded']} measured ({app['not_brain']} not brain); "
            f"upload → measurement {app['median_s'] * 1000:.0f} ms median, {app['p95_s'] * 1000:.0f} ms p95 "
            f"(first, with model loads: {app['first_s']:.1f} s); prediction → measurement "
            f"{app['after_prediction_median_s'] * 1000:.0f} ms median; HC MAE {app['hc_mae_mm']:.2f} mm"
        )
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    parts = [f"{f['runtime']}: p50={f['median_ms']:.0f}ms p90={f['p90_ms']:.0f}ms" for f in alone]
    if app is not None:
        parts.append(f"app: upload→measurement p50={app['median_s'] * 1000:.0f}ms p95={app['p95_s'] * 1000:.0f}ms")
    print(f"bench_biometry ({len(records)} images): " + "; ".join(parts) + f"; loadavg={load}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
