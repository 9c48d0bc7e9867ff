"""Cine loops: frames per second through the worker's batched frame classification, one clip's upload to its
key frames' predictions with a real Celery worker, and that worker's peak memory.

    python bench/bench_cine.py [--data ../shared/data/fetal-planes] [--frames 200] [--long-frames 600]
        [--container mp4|dicom] [--size 800x600] [--runs 3] [--compare 1] [--e2e-runs 2] [--cold-frames 24]
        [--concurrency 2] [--postgres-server postgres://postgres@127.0.0.1:5432/postgres]
        [--broker redis://127.0.0.1:6379/11] [--skip-e2e]

(a) Throughput: a clip of ``--frames`` frames, a probe's sweep over real images of the data set (one image per
    plane, each frame shifted a few pixels), goes through the worker's own code path: classifier.ml.frames'
    iter_frames, PlaneClassifier.classify_frames and the KeyFramePicker, at settings.CINE_BATCH_SIZE and at batch 1.
    Median of ``--runs`` interleaved rounds after a warm-up; decoding alone and decoding with preprocessing are
    timed too, to show where the time goes. ``--compare 1,4,8`` times more batch sizes; ``CINE_BATCH_SIZE=8``
    in the environment changes the configured one, for (a) and for the worker in (b).
(b) End to end: the script makes a throwaway PostgreSQL database (dropped at the end), a media folder and a user,
    starts ``celery -A fetalsite worker`` (prefork, ``--concurrency`` processes, as the Procfile) against it and a
    Redis database of its own, uploads through patients.services.image_upload (what the page and the API call),
    and times from the upload's start to the last key frame's prediction saved; the issue's bar is 30 s for a
    200-frame clip. A first clip of ``--cold-frames`` frames warms the worker (model loaded, graphs traced), and
    its time is shown as the cold start. The breakdown comes from the jobs' own timestamps.
(c) Memory: the worker processes' peak RSS (VmHWM in /proc/<pid>/status), reset before each clip, for the
    ``--frames`` clip and the ``--long-frames`` one: frames are streamed, so the two should be close.

Without the data set (``--data`` absent) the frames are generated speckle: the timings hold, the key frames may not.
Prints the machine, the commit and the command first, and ends with one line of figures. Exits 1 when the
``--frames`` clip misses the 30 s bar.
"""

from __future__ import annotations

import argparse
import csv
import functools
import io
import math
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
DATA_DIR = REPO_ROOT.parent / "shared" / "data" / "fetal-planes"
BAR_S = 30.0
SETTINGS = "fetalsite.settings.local"
DATABASE_NAME = f"fetal_bench_cine_{os.getpid()}"
MARGIN = 16  # pixels the sweep may move the image by, so no frame shows an edge


# ---- The clip: a probe's sweep over one real image per plane -------------------------------------------------


def plane_images(data_dir: Path, classifier) -> tuple[list[Image.Image], str]:
    """One grey image per plane: the first test image that the model labels with its plane, unflagged (so the
    clip has a key frame to find for each), else the plane's first test image; generated ones without the data."""
    manifest = data_dir / "manifest.csv"
    if not manifest.is_file():
        print(f"NOTE: {data_dir} has no manifest.csv; the clip is generated speckle (key frames may be missing)")
        rng = np.random.default_rng(0)
        grains = [rng.integers(30, 220, (60, 80), dtype=np.uint8) for _ in classifier.class_names]
        return [Image.fromarray(g).resize((800, 600), Image.Resampling.BILINEAR) for g in grains], "generated"
    with open(manifest, newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["split"] == "test" and (data_dir / r["file"]).is_file()]
    chosen: dict[str, Image.Image] = {}
    for plane in classifier.class_names:
        candidates = [r["file"] for r in rows if r["label"] == plane][:20]
        if not candidates:
            raise SystemExit(f"{manifest} has no test image of {plane}")
        for name in [*candidates, candidates[0]]:  # the first one again when none is labelled right, unflagged
            with Image.open(data_dir / name) as image:
                grey = image.convert("L")
            result = classifier.classify(grey)
            if result.label == plane and not result.needs_review:
                break
        chosen[name] = grey
    return list(chosen.values()), f"real images of {data_dir}: {', '.join(chosen)}"


def sweep(planes: list[Image.Image], frames: int, size: tuple[int, int]) -> Iterator[np.ndarray]:
    """``frames`` grey frames of ``size``: the planes in turn, each frame the image moved a few pixels."""
    width, height = size
    bases = [p.resize((width + 2 * MARGIN, height + 2 * MARGIN), Image.Resampling.BILINEAR) for p in planes]
    for index in range(frames):
        base = bases[index * len(bases) // frames]
        dx = round(MARGIN + (MARGIN - 2) * math.sin(index / 5))
        dy = round(MARGIN + (MARGIN - 2) * math.sin(index / 7 + 1) / 2)
        yield np.asarray(base.crop((dx, dy, dx + width, dy + height)))


def mp4_clip(planes: list[Image.Image], frames: int, size: tuple[int, int], fps: int = 25) -> bytes:
    """An H.264 MP4 (yuv420p), as an ultrasound machine's or a PACS viewer's export."""
    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("h264", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for grey in sweep(planes, frames, size):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.stack([grey] * 3, axis=-1), format="rgb24")))
        container.mux(stream.encode())
    return buffer.getvalue()


def dicom_clip(planes: list[Image.Image], frames: int, size: tuple[int, int], *, patient_id: str) -> bytes:
    """An Ultrasound Multi-frame Image Storage file, MONOCHROME2 in JPEG Baseline (one JPEG a frame, 25 fps)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit, UltrasoundMultiFrameImageStorage, generate_uid

    jpegs = []
    for grey in sweep(planes, frames, size):
        buffer = io.BytesIO()
        Image.fromarray(grey).save(buffer, format="JPEG", quality=90)
        jpegs.append(buffer.getvalue())
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = UltrasoundMultiFrameImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientID, ds.PatientName, ds.Modality = patient_id, "Bench^Cine", "US"
    ds.Rows, ds.Columns = size[1], size[0]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    ds.NumberOfFrames, ds.FrameTime = frames, "40"
    ds.PixelData = encapsulate(jpegs)
    ds["PixelData"].VR = "OB"
    ds.LossyImageCompression = "01"
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def make_clip(container: str, planes, frames: int, size, *, patient_id: str = "BENCH") -> tuple[bytes, str]:
    if container == "dicom":
        return dicom_clip(planes, frames, size, patient_id=patient_id), "clip.dcm"
    return mp4_clip(planes, frames, size), "clip.mp4"


# ---- (a) Frames per second through the worker's code path ----------------------------------------------------


def classify_clip(classifier, data: bytes, batch_size: int) -> int:
    """What the worker does with a clip's bytes (classifier.services._cine_job_run, less the database)."""
    from classifier.ml.frames import iter_frames
    from classifier.ml.keyframes import KeyFramePicker

    picker = KeyFramePicker(classifier.class_names)
    scores = classifier.classify_frames(iter_frames(data), batch_size=batch_size, on_batch=picker.offer_batch)
    picker.key_frames()  # the PNGs the worker stores as stills
    return scores.frame_count


def interleaved_medians(runs: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median seconds of each run over ``rounds`` rounds, after a warm-up round (graph traced for each batch
    shape, decoders loaded). The runs take turns within a round, so a change in the machine's load
    (other work on its two cores) falls on all of them alike."""
    for run in runs.values():
        run()
    timings: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            timings[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in timings.items()}


def throughput(classifier, data: bytes, frames: int, *, batch_size: int, compare: list[int], runs: int) -> dict:
    from classifier.ml.frames import iter_frames
    from classifier.ml.preprocessing import preprocess

    def decode_and_preprocess() -> None:
        for frame in iter_frames(data):
            preprocess(frame, classifier.input_size)

    batches = list(dict.fromkeys([batch_size, *compare]))
    medians = interleaved_medians(
        {
            **{f"batch{size}": functools.partial(classify_clip, classifier, data, size) for size in batches},
            "decode": lambda: sum(1 for _ in iter_frames(data)),
            "decode_and_preprocess": decode_and_preprocess,
        },
        runs,
    )
    figures = {f"fps_batch{size}": frames / medians[f"batch{size}"] for size in batches}
    for size in batches:
        print(f"  batch {size:>3}: {frames / medians[f'batch{size}']:6.1f} frames/s  ({medians[f'batch{size}']:.2f} s)")
    decode_s, prepared_s, whole_s = medians["decode"], medians["decode_and_preprocess"], medians[f"batch{batch_size}"]
    figures["decode_fps"] = frames / decode_s
    print(
        f"  where the time goes at batch {batch_size}: decode {decode_s:.2f} s ({frames / decode_s:.0f} frames/s),"
        f" preprocess {prepared_s - decode_s:.2f} s, predict and key frames {whole_s - prepared_s:.2f} s"
    )
    return figures


# ---- (b) and (c): upload to key frames with a real worker ----------------------------------------------------


def proc_status(pid: int) -> dict[str, str]:
    try:
        with open(f"/proc/{pid}/status") as handle:
            return dict(line.rstrip("\n").split(":\t", 1) for line in handle if ":\t" in line)
    except OSError:
        return {}


def kib(value: str) -> int:
    return int(value.split()[0]) if value else 0


def child_pids(parent: int) -> list[int]:
    """The worker's pool processes: every process whose parent is ``parent``."""
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and proc_status(int(entry)).get("PPid") == str(parent):
            children.append(int(entry))
    return sorted(children)


@dataclass
class Worker:
    process: subprocess.Popen
    log_path: Path

    def pids(self) -> list[int]:
        return [self.process.pid, *child_pids(self.process.pid)]

    def reset_peaks(self) -> float:
        """Peak RSS counts again from now (writing 5 to clear_refs resets VmHWM, Linux 4.0+); the largest pool
        process's RSS now, in MiB: what the peak is measured against."""
        for pid in self.pids():
            try:
                with open(f"/proc/{pid}/clear_refs", "w") as handle:
                    handle.write("5")
            except OSError:
                pass
        return max([kib(proc_status(pid).get("VmRSS", "")) for pid in self.pids()[1:]] or [0]) / 1024

    def peak_rss_mib(self) -> tuple[float, float]:
        """(the largest pool process's VmHWM, the main process's VmHWM) in MiB."""
        main, *pool = self.pids()
        peaks = [kib(proc_status(pid).get("VmHWM", "")) for pid in pool] or [0]
        return max(peaks) / 1024, kib(proc_status(main).get("VmHWM", "")) / 1024


@contextmanager
def celery_worker(env: dict[str, str], *, concurrency: int, log_dir: Path) -> Iterator[Worker]:
    log_path = log_dir / "worker.log"
    command = [sys.executable, "-m", "celery", "-A", "fetalsite", "worker", "--pool", "prefork"]
    command += ["--concurrency", str(concurrency), "--loglevel", "INFO", "--without-gossip", "--without-mingle"]
    with open(log_path, "w") as log:
        # The command is this script's own, not input: only the concurrency (an int) comes from the arguments.
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
    worker = Worker(process, log_path)
    try:
        deadline = time.monotonic() + 120
        while " ready." not in log_path.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the Celery worker did not start; its log:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        yield worker
    except BaseException:
        print(f"the worker's log ends:\n{log_path.read_text()[-3000:]}")
        raise
    finally:
        process.terminate()  # warm shutdown: the pool finishes what it runs, then exits
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


@contextmanager
def throwaway_database(server_url: str) -> Iterator[None]:
    """A fresh PostgreSQL database on ``server_url``'s server for this run, dropped afterwards."""
    import psycopg

    name = DATABASE_NAME
    with psycopg.connect(server_url.replace("postgres://", "postgresql://", 1), autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield
    finally:
        with psycopg.connect(server_url.replace("postgres://", "postgresql://", 1), autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def prepare_app(log_dir: Path):
    """Migrate, register and activate the newest model, and make a sonographer of a clinic."""
    from django.core.management import call_command

    from fetalsite.accounts.roles import Role
    from fetalsite.accounts.services import clinic_get_or_create, user_create_or_update

    call_command("migrate", verbosity=0)
    with open(log_dir / "register_models.log", "w") as out:
        call_command("register_models", stdout=out)
    clinic = clinic_get_or_create(name="Bench Clinic")
    user, _ = user_create_or_update(
        username="bench_sono", password=uuid.uuid4().hex, clinic=clinic, role=Role.SONOGRAPHER
    )
    return user


def new_study(user, patient_id: str):
    from django.utils import timezone

    from patients.services import patient_create, study_create

    patient = patient_create(created_by=user, mrn=patient_id, given_name="Cine", family_name="Bench")
    return study_create(patient=patient, exam_date=timezone.localdate(), created_by=user)


def wait_for_key_frames(clip_id: int, *, timeout_s: float) -> dict:
    """Poll until the clip's job has finished and every key frame still has its prediction; their timestamps."""
    from classifier.models import CineFrames, ClassificationJob, Prediction

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = ClassificationJob.objects.filter(image_id=clip_id).order_by("id").last()
        if job is not None and job.status == ClassificationJob.Status.FAILED:
            raise SystemExit(f"the clip's job failed: {job.error}")
        if job is not None and job.status == ClassificationJob.Status.SUCCEEDED:
            cine = CineFrames.objects.get(job=job)
            still_jobs = list(ClassificationJob.objects.filter(image__clip_id=clip_id))
            failed = [j.error for j in still_jobs if j.status == ClassificationJob.Status.FAILED]
            if failed:
                raise SystemExit(f"a key frame's job failed: {failed[0]}")
            predictions = list(Prediction.objects.filter(job__image__clip_id=clip_id))
            if len(predictions) == len(still_jobs) == len(cine.key_frames):
                return {"job": job, "cine": cine, "still_jobs": still_jobs, "predictions": predictions}
        time.sleep(0.05)
    raise SystemExit(f"clip {clip_id}: no key frame predictions after {timeout_s:.0f} s")


def upload_clip(*, user, planes, args, frames: int, worker: Worker) -> dict:
    """Upload one clip of ``frames`` frames into a new study; its timeline and the worker's peak RSS meanwhile."""
    from django.utils import timezone

    from patients.services import image_upload

    patient_id = f"BENCH-{uuid.uuid4().hex[:8]}"
    data, name = make_clip(args.container, planes, frames, args.size, patient_id=patient_id)
    study = new_study(user, patient_id)
    baseline_mib = worker.reset_peaks()
    started = timezone.now()
    image = image_upload(study=study, data=data, filename=name, uploaded_by=user).image
    accepted = timezone.now()
    if not image.is_cine:
        raise SystemExit(f"the {name} upload was stored as a {image.kind}, not a cine clip")
    done = wait_for_key_frames(image.id, timeout_s=max(120.0, frames))
    job, cine = done["job"], done["cine"]
    end = max([p.created_at for p in done["predictions"]], default=job.finished_at)
    pool_peak, main_peak = worker.peak_rss_mib()
    return {
        "frames": frames,
        "bytes": len(data),
        "total_s": (end - started).total_seconds(),
        "upload_s": (accepted - started).total_seconds(),
        # The job is sent on commit, inside image_upload: a worker may start it before the call has returned.
        "queue_s": max(0.0, (job.started_at - accepted).total_seconds()),
        "clip_job_s": (job.finished_at - job.started_at).total_seconds(),
        "frames_s": cine.inference_ms / 1000,
        "key_frames_s": (end - job.finished_at).total_seconds(),
        "key_frames": len(cine.key_frames),
        "pool_peak_mib": pool_peak,
        "pool_before_mib": baseline_mib,
        "main_peak_mib": main_peak,
    }


def show_run(label: str, run: dict) -> None:
    print(
        f"  {label}: {run['total_s']:.1f} s = upload {run['upload_s']:.1f} + queue {run['queue_s']:.2f}"
        f" + clip job {run['clip_job_s']:.1f} (frames {run['frames_s']:.1f}) + key frames {run['key_frames_s']:.1f}"
        f" ({run['key_frames']} stills); worker peak RSS {run['pool_peak_mib']:.0f} MiB"
        f" (was {run['pool_before_mib']:.0f} MiB before the upload)"
        f" (main process {run['main_peak_mib']:.0f} MiB); clip {run['bytes'] / 1e6:.1f} MB"
    )


def end_to_end(*, args, planes, env: dict[str, str], log_dir: Path) -> dict:
    from fetalsite.celery import app

    figures: dict = {}
    with throwaway_database(args.postgres_server):
        user = prepare_app(log_dir)
        with app.connection_for_write() as connection:  # nothing left over from an earlier run on this Redis db
            for queue in app.amqp.queues:  # all four (settings.celery_queues)
                connection.default_channel.queue_purge(queue)
        with celery_worker(env, concurrency=args.concurrency, log_dir=log_dir) as worker:
            print(f"  worker: {args.concurrency} prefork processes (pids {worker.pids()})")
            cold = upload_clip(user=user, planes=planes, args=args, frames=args.cold_frames, worker=worker)
            show_run(f"{args.cold_frames} frames, cold worker (model load, graph tracing)", cold)
            figures["cold_s"] = cold["total_s"]
            runs = [
                upload_clip(user=user, planes=planes, args=args, frames=args.frames, worker=worker)
                for _ in range(args.e2e_runs)
            ]
            for index, run in enumerate(runs, 1):
                show_run(f"{args.frames} frames, run {index}", run)
            figures["e2e_s"] = statistics.median(r["total_s"] for r in runs)
            figures["upload_s"] = statistics.median(r["upload_s"] for r in runs)
            figures["rss_mib"] = max(r["pool_peak_mib"] for r in runs)
            if args.long_frames:
                long = upload_clip(user=user, planes=planes, args=args, frames=args.long_frames, worker=worker)
                show_run(f"{args.long_frames} frames", long)
                figures["e2e_long_s"] = long["total_s"]
                figures["rss_long_mib"] = long["pool_peak_mib"]
    return figures


# ---- The run ---------------------------------------------------------------------------------------------------


def proc_field(path: str, name: str) -> str:
    with open(path) as handle:
        return next((line.split(":", 1)[1].strip() for line in handle if line.startswith(name)), "?")


def git(*arguments: str) -> str:
    command = [shutil.which("git") or "/usr/bin/git", *arguments]
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=False).stdout.strip()  # noqa: S603


def describe_machine() -> None:
    memory = kib(proc_field("/proc/meminfo", "MemTotal"))
    dirty = " (with uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") else ""
    print(f"machine: {os.cpu_count()} cores, {proc_field('/proc/cpuinfo', 'model name')}, {memory / 1024**2:.0f} GiB")
    print(f"commit:  {git('rev-parse', '--short', 'HEAD')}{dirty}")
    batch = f"CINE_BATCH_SIZE={os.environ['CINE_BATCH_SIZE']} " if "CINE_BATCH_SIZE" in os.environ else ""
    print(f"command: {batch}python {shlex.join(sys.argv)}")
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


def configure_django(*, database_url: str, media_root: Path, broker: str) -> dict[str, str]:
    """The bench process and the worker it starts share one database, media folder and broker."""
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE=SETTINGS,
        DATABASE_URL=database_url,
        MEDIA_ROOT=str(media_root),
        CELERY_BROKER_URL=broker,
    )
    os.environ.update(env)
    import django

    django.setup()
    return env


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA_DIR, help="the fetal-planes data set (manifest.csv)")
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--long-frames", type=int, default=600, help="the long clip for memory (0: none)")
    parser.add_argument("--container", choices=["mp4", "dicom"], default="mp4")
    parser.add_argument("--size", default="800x600", help="frame width x height")
    parser.add_argument("--runs", type=int, default=3, help="timed rounds of (a) after a warm-up")
    parser.add_argument("--compare", default="1", help="batch sizes (a) times beside CINE_BATCH_SIZE, e.g. 1,4,8")
    parser.add_argument("--e2e-runs", type=int, default=2, help="uploads of the --frames clip in (b)")
    parser.add_argument("--cold-frames", type=int, default=24, help="the first clip, on the fresh worker")
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes (the Procfile's 2)")
    parser.add_argument("--postgres-server", default="postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/11", help="a Redis database of its own")
    parser.add_argument("--skip-e2e", action="store_true", help="only (a)")
    args = parser.parse_args()
    args.size = tuple(int(v) for v in args.size.lower().split("x"))
    args.compare = [int(v) for v in args.compare.split(",") if v.strip()]
    return args


def main() -> int:
    args = parse_args()
    describe_machine()
    with tempfile.TemporaryDirectory(prefix="bench-cine-") as tmp:
        database_url = args.postgres_server.rsplit("/", 1)[0] + f"/{DATABASE_NAME}"
        env = configure_django(database_url=database_url, media_root=Path(tmp) / "media", broker=args.broker)
        from django.conf import settings

        from classifier.ml.card import newest_card, read_card
        from classifier.ml.inference import PlaneClassifier

        card_path = newest_card(Path(settings.MODELS_DIR))
        card = read_card(card_path)
        classifier = PlaneClassifier.from_card(card, card_path.parent / card["file"])
        planes, source = plane_images(args.data, classifier)
        data, name = make_clip(args.container, planes, args.frames, args.size)
        print(f"model {card['name']} v{card['version']} ({card['input_size']} px); clip {name}: {args.frames} frames")
        print(f"  of {args.size[0]}x{args.size[1]} from {source}, {len(data) / 1e6:.1f} MB")
        print(f"(a) frames per second through the worker's code path (median of {args.runs} rounds after a warm-up):")
        batch = settings.CINE_BATCH_SIZE
        figures = throughput(classifier, data, args.frames, batch_size=batch, compare=args.compare, runs=args.runs)
        if not args.skip_e2e:
            print("(b, c) upload to key frames' predictions with a real worker; the worker's peak RSS:")
            figures |= end_to_end(args=args, planes=planes, env=env, log_dir=Path(tmp))
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"load average at end: {load}")
    print(summary(figures, args, load))
    return 1 if figures.get("e2e_s", 0) > BAR_S else 0


def summary(figures: dict, args, load: str) -> str:
    parts = [f"{name}={value:.1f}" for name, value in figures.items() if name.startswith("fps_batch")]
    parts.append(f"decode_fps={figures['decode_fps']:.0f}")
    if "e2e_s" in figures:
        verdict = "met" if figures["e2e_s"] <= BAR_S else f"MISSED by {figures['e2e_s'] - BAR_S:.1f} s"
        parts += [f"upload_to_key_frames_{args.frames}={figures['e2e_s']:.1f}s (bar {BAR_S:.0f} s {verdict};"]
        parts += [f"upload accepted after {figures['upload_s']:.1f}s)"]
        parts += [
            f"cold_{args.cold_frames}={figures['cold_s']:.1f}s",
            f"worker_peak_rss_{args.frames}={figures['rss_mib']:.0f}MiB",
        ]
    if "e2e_long_s" in figures:
        parts += [f"upload_to_key_frames_{args.long_frames}={figures['e2e_long_s']:.1f}s"]
        parts += [f"worker_peak_rss_{args.long_frames}={figures['rss_long_mib']:.0f}MiB"]
    return f"bench_cine ({args.container}): " + " ".join(parts) + f" load={load}"


if __name__ == "__main__":
    raise SystemExit(main())
