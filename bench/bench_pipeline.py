"""End to end: real images uploaded through the API by concurrent clients, classified by real Celery workers, against
the model alone on the same cores.

    python bench/bench_pipeline.py [--data ../shared/data/fetal-planes] [--images N] [--clients 4] [--workers 1,2]
        [--runtime litert|keras] [--queues classify] [--singles 20] [--web-workers 3] [--model-batches 1,16]
        [--settings fetalsite.settings.production] [--postgres-server postgres://postgres@127.0.0.1:5432/postgres]
        [--broker redis://127.0.0.1:6379/12]

It starts what it needs itself: a throwaway PostgreSQL database (dropped at the end), a media folder, the newest
model registered and active, an integrator with an API token, gunicorn (``--web-workers`` processes, the Procfile's
3) and, for each ``--workers`` value, a fresh ``celery -A fetalsite worker`` (prefork, that many processes, ``-Q
--queues`` when the settings define that queue) on a Redis database of its own. All of them run the production
settings (``SECURE_SSL_REDIRECT=false``: the bench speaks plain HTTP to 127.0.0.1).

1. Model alone: a separate process loads the model as the worker does (``classifier.registry.classifier_for``: the
   same runtime, given every core: INFERENCE_THREADS=os.cpu_count()), preprocesses the images once and predicts
   them at each ``--model-batches`` size; images a second at the best size (bench/bench_model.py has the
   runtimes' full figures). Its load time (imports, file check, load; then the first prediction) is printed too.
2. For each worker count: warm-up uploads of training images, one at a time while the previous one runs, so that
   each pool process gets one as its first job (its duration less a warm job's is the process's model load); then
   the ``--images`` test images uploaded by ``--clients`` threads, each its own ``POST
   /api/v1/studies/{id}/images/``. Images a second from the first upload accepted (the first 202 received) to the
   last prediction saved, and per image upload accepted → prediction saved (median, p95) from the database's
   timestamps: ``UltrasoundImage.uploaded_at`` (set in the web process) and ``Prediction.created_at`` (in the
   worker), both ``django.utils.timezone.now()``, the same host's clock; the bench checks that each upload's
   stored time is not after the client received its 202. Then ``--singles`` uploads one after another on the idle,
   warm system, each awaited until its prediction is saved. Each pool process's peak RSS (VmHWM) at the end.

Prints the machine, the commit, the command and the load average, and ends with one line of figures.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests
from bench_cine import Worker, child_pids, git, kib, proc_field, proc_status
from load_uploads import _create_study

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
DATA_DIR = REPO_ROOT.parent / "shared" / "data" / "fetal-planes"
DATABASE_NAME = f"fetal_bench_pipeline_{os.getpid()}"
USERNAME, PASSWORD = "bench_integrator", uuid.uuid4().hex
SINGLE_TARGET_S = 0.15


@dataclass(frozen=True)
class Sample:
    name: str
    data: bytes


def samples(data_dir: Path, split: str, count: int | None, skip: int = 0) -> list[Sample]:
    """Distinct real images of the data set's ``split``, in the manifest's order."""
    manifest = data_dir / "manifest.csv"
    if not manifest.is_file():
        raise SystemExit(f"{manifest} is missing: the benchmark uploads real images (--data)")
    with open(manifest, newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["split"] == split and (data_dir / r["file"]).is_file()]
    rows = rows[skip : None if count is None else skip + count]
    return [Sample(r["file"], (data_dir / r["file"]).read_bytes()) for r in rows]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# ---- The processes: database, gunicorn, Celery -------------------------------------------------------------------


@contextmanager
def throwaway_database(server_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database for this run (its URL), dropped afterwards."""
    import psycopg

    server = server_url.replace("postgres://", "postgresql://", 1)
    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
    try:
        yield server_url.rsplit("/", 1)[0] + f"/{DATABASE_NAME}"
    finally:
        with psycopg.connect(server, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{DATABASE_NAME}" WITH (FORCE)')


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU time the processes have used so far (/proc/<pid>/stat): unlike wall time, what an image
    costs in CPU does not grow with other work on the machine."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(process: subprocess.Popen) -> None:
    process.terminate()  # warm shutdown for both gunicorn and Celery
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()


@contextmanager
def gunicorn(env: dict[str, str], *, processes: int, log_dir: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """The app under gunicorn as the Procfile runs it; its URL once /health/ answers, and its master process."""
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "fetalsite.wsgi", "--bind", f"127.0.0.1:{port}"]
    command += ["--workers", str(processes), "--timeout", "60"]
    log_path = log_dir / "gunicorn.log"
    with open(log_path, "w") as log:
        # The command is this script's own; only the process count (an int) comes from the arguments.
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"gunicorn did not start; its log:\n{log_path.read_text()[-3000:]}")
            try:
                requests.get(f"{url}/health/", timeout=30)
                break
            except requests.RequestException:  # not listening yet, or its processes still importing
                time.sleep(0.2)
        yield url, process
    finally:
        stop(process)


@contextmanager
def celery_worker(env: dict[str, str], *, concurrency: int, queues: str, log_dir: Path) -> Iterator[Worker]:
    log_path = log_dir / f"worker-{concurrency}.log"
    command = [sys.executable, "-m", "celery", "-A", "fetalsite", "worker", "--pool", "prefork"]
    command += ["--concurrency", str(concurrency), "--loglevel", "INFO", "--without-gossip", "--without-mingle"]
    command += ["-Q", queues] if queues else []
    started = time.monotonic()
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
    worker = Worker(process, log_path)
    try:
        deadline = started + 120
        while "ready." not in log_path.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the Celery worker did not start; its log:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        print(f"  worker ready after {time.monotonic() - started:.1f} s: {shlex.join(command[1:])}")
        yield worker
    except BaseException:
        print(f"the worker's log ends:\n{log_path.read_text()[-3000:]}")
        raise
    finally:
        stop(process)


def configure_django(args: argparse.Namespace, *, database_url: str, media_root: Path) -> dict[str, str]:
    """The bench, gunicorn and the workers share one database, media folder, broker and settings."""
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE=args.settings,
        DATABASE_URL=database_url,
        MEDIA_ROOT=str(media_root),
        CELERY_BROKER_URL=args.broker,
        SECURE_SSL_REDIRECT="false",
        ALLOWED_HOSTS="127.0.0.1,localhost",
    )
    env.setdefault("SECRET_KEY", uuid.uuid4().hex * 2)
    if args.runtime:
        env["INFERENCE_RUNTIME"] = args.runtime
    os.environ.update(env)
    import django

    django.setup()
    return env


def prepare_app(log_dir: Path) -> None:
    """Migrate, register and activate the newest model, and make an integrator (the API's role)."""
    from django.core.management import call_command

    from fetalsite.accounts.roles import Role
    from fetalsite.accounts.services import clinic_get_or_create, user_create_or_update

    call_command("migrate", verbosity=0)
    with open(log_dir / "register_models.log", "w") as out:
        call_command("register_models", stdout=out)
    clinic = clinic_get_or_create(name="Bench Clinic")
    user_create_or_update(username=USERNAME, password=PASSWORD, clinic=clinic, role=Role.INTEGRATOR)


def purge_queues() -> None:
    """Nothing left over from an earlier run on this Redis database."""
    from django.conf import settings

    from fetalsite.celery import app

    names = {getattr(q, "name", q) for q in getattr(settings, "CELERY_TASK_QUEUES", None) or []}
    names.add(app.conf.task_default_queue)
    with app.connection_for_write() as connection:
        for name in names:
            connection.default_channel.queue_purge(name)


# ---- 1. The model alone, in its own process ------------------------------------------------------------------------


def model_alone(images: list[Sample], batch_sizes: list[int], rounds: int) -> dict:
    """In this (fresh) process: load as the worker does, preprocess once, images a second by batch size."""
    started = time.perf_counter()
    from classifier.registry import classifier_for
    from classifier.selectors import active_model_version

    classifier = classifier_for(active_model_version())
    load_s = time.perf_counter() - started
    import numpy as np

    from classifier.ml.preprocessing import load_image, preprocess

    inputs = np.stack([preprocess(load_image(s.data), classifier.input_size) for s in images])
    started = time.perf_counter()
    classifier.predict_outputs(inputs[:1])
    first_s = time.perf_counter() - started

    def one_pass(size: int) -> float:
        started = time.perf_counter()
        for start in range(0, len(inputs), size):
            classifier.predict_outputs(inputs[start : start + size])
        return time.perf_counter() - started

    timings: dict[int, list[float]] = {size: [] for size in batch_sizes}
    for size in batch_sizes:
        one_pass(size)  # traces or resizes for this batch shape
    cpu_started = time.process_time()
    for _ in range(rounds):  # sizes take turns, so a change in the machine's load falls on each alike
        for size in batch_sizes:
            timings[size].append(one_pass(size))
    cpu_ms = (time.process_time() - cpu_started) * 1000 / (rounds * len(batch_sizes) * len(inputs))
    per_s = {size: len(inputs) / statistics.median(values) for size, values in timings.items()}
    rss = kib(proc_status(os.getpid()).get("VmHWM", "")) / 1024
    runtime = getattr(classifier, "runtime", "keras")
    figures = {"runtime": runtime, "load_s": load_s, "first_predict_s": first_s, "per_s": per_s, "rss_mib": rss}
    return figures | {"cpu_ms": cpu_ms}


def measure_model_alone(args: argparse.Namespace, env: dict[str, str]) -> dict:
    command = [sys.executable, __file__, "--model-alone", *sys.argv[1:]]
    # Every core for the one process, as the model-alone figure of the issue (a worker process gets its share).
    env = env | {"INFERENCE_THREADS": str(os.cpu_count())}
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        raise SystemExit(f"the model-alone process failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    figures["per_s"] = {int(size): value for size, value in figures["per_s"].items()}
    best = max(figures["per_s"], key=figures["per_s"].get)
    figures["best_batch"], figures["best_per_s"] = best, figures["per_s"][best]
    sizes = ", ".join(f"batch {size}: {value:.1f}" for size, value in figures["per_s"].items())
    print(
        f"1. model alone ({figures['runtime']}, {len(args.images_list)} test images preprocessed once, median of"
        f" {args.model_rounds} rounds): {sizes} images/s; best batch {best}: {figures['best_per_s']:.1f} images/s."
        f" Fresh process: load {figures['load_s']:.1f} s (imports, file check, load), first prediction"
        f" {figures['first_predict_s']:.2f} s, peak RSS {figures['rss_mib']:.0f} MiB; CPU time per image (all the"
        f" batch sizes) {figures['cpu_ms']:.0f} ms"
    )
    return figures


# ---- 2. Uploads through the API ------------------------------------------------------------------------------------


@dataclass
class Api:
    url: str
    token: str
    local: threading.local = field(default_factory=threading.local)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Token {self.token}"}

    def session(self) -> requests.Session:
        if not hasattr(self.local, "session"):  # one keep-alive connection per client thread
            self.local.session = requests.Session()
        return self.local.session

    def study(self) -> int:
        return _create_study(f"{self.url}/api/v1", self.headers, uuid.uuid4().hex[:8])

    def upload(self, study_id: int, sample: Sample) -> tuple[int, float]:
        """POST one image; its id and the wall-clock time its 202 came back."""
        response = self.session().post(
            f"{self.url}/api/v1/studies/{study_id}/images/",
            files={"file": (Path(sample.name).name, sample.data)},
            headers=self.headers,
            timeout=120,
        )
        accepted = time.time()
        if response.status_code != 202:
            raise SystemExit(f"upload of {sample.name}: {response.status_code} {response.text[:300]}")
        return response.json()["id"], accepted


def log_in(url: str) -> Api:
    response = requests.post(f"{url}/api/v1/auth/token/", json={"username": USERNAME, "password": PASSWORD}, timeout=30)
    response.raise_for_status()
    return Api(url, response.json()["token"])


def wait_for_predictions(image_ids: list[int], *, timeout_s: float, interval: float = 0.02) -> list[dict]:
    """Poll until every image has its prediction saved; per image its timestamps (a failed job ends the run)."""
    from classifier.models import ClassificationJob, Prediction

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if Prediction.objects.filter(job__image_id__in=image_ids).count() >= len(image_ids):
            break
        failed = ClassificationJob.objects.filter(image_id__in=image_ids, status=ClassificationJob.Status.FAILED)
        if failed.exists():
            raise SystemExit(f"a job failed: {failed.first().error}")
        time.sleep(interval)
    else:
        raise SystemExit(f"not every prediction was saved within {timeout_s:.0f} s")
    fields = ["job__image_id", "job__image__uploaded_at", "job__started_at", "job__finished_at", "created_at"]
    fields += ["runtime", "inference_ms"]
    keys = ["image", "uploaded", "started", "finished", "saved", "runtime", "inference_ms"]
    rows = Prediction.objects.filter(job__image_id__in=image_ids).values_list(*fields)
    return [dict(zip(keys, row, strict=True)) for row in rows]


def warm_up(api: Api, worker: Worker, warm: list[Sample], *, concurrency: int) -> dict:
    """Two rounds of ``concurrency`` uploads, each sent once the previous one's job runs, so that (fair
    scheduling, and no queued job for a busy process to take along) each pool process's first job is one of the
    first round. A process's model load: its first job's duration less the second round's median."""
    from classifier.models import ClassificationJob

    study_id = api.study()
    rounds: list[list[dict]] = []
    for round_samples in (warm[:concurrency], warm[concurrency : 2 * concurrency]):
        ids = []
        for sample in round_samples:
            image_id, _ = api.upload(study_id, sample)
            ids.append(image_id)
            deadline = time.monotonic() + 120
            while not ClassificationJob.objects.filter(image_id=image_id, started_at__isnull=False).exists():
                if time.monotonic() > deadline:
                    raise SystemExit(f"image {image_id}'s job never started")
                time.sleep(0.01)
        rounds.append(wait_for_predictions(ids, timeout_s=300))
    cold = [(r["finished"] - r["started"]).total_seconds() for r in rounds[0]]
    warm_s = statistics.median((r["finished"] - r["started"]).total_seconds() for r in rounds[1])
    rss = {pid: kib(proc_status(pid).get("VmRSS", "")) / 1024 for pid in worker.pids()[1:]}
    print(
        f"  warm-up: first jobs {', '.join(f'{s:.1f}' for s in sorted(cold))} s, warm jobs {warm_s:.2f} s;"
        f" pool RSS after {', '.join(f'{v:.0f}' for v in rss.values())} MiB"
    )
    return {"load_s": [s - warm_s for s in cold], "warm_job_s": warm_s}


def throughput(api: Api, images: list[Sample], *, clients: int) -> dict:
    """Every image uploaded by ``clients`` threads; images a second and per-image latency from the database."""
    study_id = api.study()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        sent = list(pool.map(lambda sample: api.upload(study_id, sample), images))
    accepted = {image_id: at for image_id, at in sent}
    rows = wait_for_predictions(list(accepted), timeout_s=600)
    first_accepted = min(accepted.values())
    last_saved = max(r["saved"].timestamp() for r in rows)
    latency = [(r["saved"] - r["uploaded"]).total_seconds() for r in rows]
    skew = max(r["uploaded"].timestamp() - accepted[r["image"]] for r in rows)
    if skew > 0:  # the web process stored a time after the client had its 202: not one clock
        raise SystemExit(f"an upload's stored time is {skew:.3f} s after its 202 was received: clocks differ")
    queue = [(r["started"] - r["uploaded"]).total_seconds() for r in rows]
    return {
        "per_s": len(rows) / (last_saved - first_accepted),
        "wall_s": last_saved - first_accepted,
        "median_s": statistics.median(latency),
        "p95_s": percentile(latency, 0.95),
        "queue_median_s": statistics.median(queue),
        "runtimes": sorted({r["runtime"] or "?" for r in rows}),
        "inference_ms": statistics.median(r["inference_ms"] for r in rows),
    }


def singles(api: Api, images: list[Sample]) -> dict:
    """One upload at a time on the idle system, each awaited until its prediction is saved."""
    study_id = api.study()
    rows = []
    for sample in images:
        image_id, _ = api.upload(study_id, sample)
        rows += wait_for_predictions([image_id], timeout_s=60, interval=0.005)
    latency = [(r["saved"] - r["uploaded"]).total_seconds() for r in rows]
    return {
        "median_s": statistics.median(latency),
        "p95_s": percentile(latency, 0.95),
        # Where it goes: the rest of the upload request, the broker and the job's start; then the job itself.
        "to_start_s": statistics.median((r["started"] - r["uploaded"]).total_seconds() for r in rows),
        "in_job_s": statistics.median((r["saved"] - r["started"]).total_seconds() for r in rows),
        "inference_ms": statistics.median(r["inference_ms"] for r in rows),
    }


def run_workers(args: argparse.Namespace, *, env: dict[str, str], api: Api, web: int, concurrency: int) -> dict:
    """A fresh worker of ``concurrency`` processes: warm-up, the concurrent uploads, the single uploads, memory."""
    purge_queues()
    skip = 2 * concurrency * (concurrency - 1)  # each worker count its own warm-up images
    warm = samples(args.data, "train", 2 * concurrency, skip=args.singles + skip)
    with celery_worker(env, concurrency=concurrency, queues=args.queues, log_dir=args.log_dir) as worker:
        cold = warm_up(api, worker, warm, concurrency=concurrency)
        web_pids = [web, *child_pids(web)]
        before = cpu_seconds(web_pids), cpu_seconds(worker.pids())
        figures = throughput(api, args.images_list, clients=args.clients)
        count = len(args.images_list)
        figures["web_cpu_ms"] = (cpu_seconds(web_pids) - before[0]) * 1000 / count
        figures["worker_cpu_ms"] = (cpu_seconds(worker.pids()) - before[1]) * 1000 / count
        single = singles(api, samples(args.data, "train", args.singles))
        peaks = [kib(proc_status(pid).get("VmHWM", "")) / 1024 for pid in worker.pids()[1:]]
        main_peak = kib(proc_status(worker.process.pid).get("VmHWM", "")) / 1024
        loads = [line for line in worker.log_path.read_text().splitlines() if "load" in line.lower()]
    print(
        f"  {len(args.images_list)} images by {args.clients} clients: {figures['per_s']:.2f} images/s"
        f" ({figures['wall_s']:.1f} s from the first 202 to the last prediction saved); upload accepted ->"
        f" prediction saved median {figures['median_s']:.2f} s, p95 {figures['p95_s']:.2f} s (of which waiting"
        f" for a worker, median {figures['queue_median_s']:.2f} s); runtime {','.join(figures['runtimes'])},"
        f" inference_ms median {figures['inference_ms']:.1f}; CPU time per image: web processes"
        f" {figures['web_cpu_ms']:.0f} ms, worker processes {figures['worker_cpu_ms']:.0f} ms"
    )
    print(
        f"  {args.singles} single uploads, idle and warm: median {single['median_s'] * 1000:.0f} ms,"
        f" p95 {single['p95_s'] * 1000:.0f} ms (target {SINGLE_TARGET_S * 1000:.0f} ms); medians: upload stored ->"
        f" job started {single['to_start_s'] * 1000:.0f} ms, job started -> prediction saved"
        f" {single['in_job_s'] * 1000:.0f} ms, of which inference_ms {single['inference_ms']:.0f}"
    )
    print(
        f"  pool processes' peak RSS {', '.join(f'{p:.0f}' for p in peaks)} MiB (main process {main_peak:.0f} MiB);"
        f" model load per process {', '.join(f'{s:.1f}' for s in cold['load_s'])} s (first job less a warm one)"
    )
    for line in loads[:4]:  # what the worker itself says about loading the model, if anything
        print(f"    worker log: {line[:200]}")
    return figures | {"single": single, "rss_mib": max(peaks), "load_s": max(cold["load_s"])}


# ---- The run -------------------------------------------------------------------------------------------------------


def describe_machine() -> None:
    memory = kib(proc_field("/proc/meminfo", "MemTotal"))
    dirty = " (with uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") else ""
    print(f"machine: {os.cpu_count()} cores, {proc_field('/proc/cpuinfo', 'model name')}, {memory / 1024**2:.0f} GiB")
    print(f"commit:  {git('rev-parse', '--short', 'HEAD')}{dirty}")
    print(f"command: python {shlex.join(sys.argv)}")
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA_DIR, help="the fetal-planes data set (manifest.csv)")
    parser.add_argument("--images", type=int, default=None, help="how many test images (default: all of them)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent API clients")
    parser.add_argument("--workers", default="1,2", help="worker processes, one fresh worker for each")
    parser.add_argument("--runtime", choices=["litert", "keras"], help="INFERENCE_RUNTIME for the workers")
    parser.add_argument("--queues", default="classify", help="the worker's -Q when the settings have those queues")
    parser.add_argument("--singles", type=int, default=20, help="single uploads on the idle system")
    parser.add_argument("--web-workers", type=int, default=3, help="gunicorn processes (the Procfile's 3)")
    parser.add_argument("--model-batches", default="1,16", help="batch sizes for the model alone")
    parser.add_argument("--model-rounds", type=int, default=3, help="timed rounds for the model alone")
    parser.add_argument("--settings", default="fetalsite.settings.production")
    parser.add_argument("--postgres-server", default="postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/12", help="a Redis database of its own")
    parser.add_argument("--model-alone", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.workers = [int(v) for v in args.workers.split(",") if v.strip()]
    args.model_batches = [int(v) for v in args.model_batches.split(",") if v.strip()]
    args.images_list = samples(args.data, "test", args.images)
    return args


def worker_queues(args: argparse.Namespace) -> str:
    """``--queues`` when the settings route tasks to such queues; else the worker consumes the default one."""
    from django.conf import settings

    defined = {getattr(q, "name", q) for q in getattr(settings, "CELERY_TASK_QUEUES", None) or []}
    wanted = [q for q in args.queues.split(",") if q]
    return ",".join(wanted) if wanted and set(wanted) <= defined else ""


def worker_settings() -> str:
    """The settings that shape the worker's speed, as this run has them (absent in older commits: "-")."""
    from django.conf import settings

    names = ["INFERENCE_RUNTIME", "INFERENCE_THREADS", "MICRO_BATCH_MAX", "CINE_BATCH_SIZE"]
    return "settings: " + ", ".join(f"{name}={getattr(settings, name, '-')}" for name in names)


def main() -> int:
    args = parse_args()
    if args.model_alone:  # the child process of measure_model_alone: Django is configured by the environment
        import django

        django.setup()
        figures = model_alone(args.images_list, args.model_batches, args.model_rounds)
        print(json.dumps(figures))
        return 0
    describe_machine()
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp, throwaway_database(args.postgres_server) as db:
        env = configure_django(args, database_url=db, media_root=Path(tmp) / "media")
        prepare_app(Path(tmp))
        args.queues = worker_queues(args)
        print(worker_settings())
        results["model"] = measure_model_alone(args, env)
        args.log_dir = Path(tmp)
        with gunicorn(env, processes=args.web_workers, log_dir=Path(tmp)) as (url, web):
            api = log_in(url)
            for concurrency in args.workers:
                print(f"2. {concurrency} worker process(es), -Q {args.queues or '(default queue)'}:")
                results[concurrency] = run_workers(args, env=env, api=api, web=web.pid, concurrency=concurrency)
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"load average at end: {load}")
    print(summary(results, args, load))
    return 0


def summary(results: dict, args: argparse.Namespace, load: str) -> str:
    model = results["model"]
    parts = [f"model_alone={model['best_per_s']:.1f}img/s@b{model['best_batch']}({model['runtime']})"]
    parts[0] += f" cpu_ms={model['cpu_ms']:.0f}"
    for concurrency in args.workers:
        r = results[concurrency]
        parts.append(
            f"w{concurrency}: {r['per_s']:.2f}img/s ratio={r['per_s'] / model['best_per_s']:.2f}"
            f" p50={r['median_s']:.2f}s p95={r['p95_s']:.2f}s single_p50={r['single']['median_s'] * 1000:.0f}ms"
            f" single_p95={r['single']['p95_s'] * 1000:.0f}ms rss={r['rss_mib']:.0f}MiB load={r['load_s']:.1f}s"
            f" cpu_ms_web={r['web_cpu_ms']:.0f} cpu_ms_worker={r['worker_cpu_ms']:.0f}"
        )
    return (
        f"bench_pipeline ({len(args.images_list)} images, {args.clients} clients): "
        + "; ".join(parts)
        + (f"; loadavg={load}")
    )


if __name__ == "__main__":
    raise SystemExit(main())
