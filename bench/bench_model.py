"""Benchmark 1, the model alone: time per image at several batch sizes for each runtime, load time and memory.

    python bench/bench_model.py [--card models/fetal-planes-v3.card.json] [--runtimes keras,litert]
                                [--sizes 1,2,4,8,16,32] [--threads N] [--processes P]

Each runtime runs in a fresh process of its own (as a worker would: the LiteRT one never imports TensorFlow), on
the real test images of ../shared/data/fetal-planes preprocessed once (random images when the data set is absent),
so only the prediction is timed. The runtimes take turns (``--rounds``, 3 by default) at each batch size, so a change
in the machine's load falls on each alike. For each batch size: median and p95 of the time per image (a batch's time
over its size; each round at least 4 batches and 48 images). Also each process's load time (importing the runtime,
loading and checking the file, BatchNorm folding for Keras, up to the first prediction) and its RSS then.

``--threads`` is what each process gives the runtime (default: every core). ``--processes P`` instead runs P
processes per runtime at once, each predicting batch 1 (a prefork worker with P processes), and gives their
images per second together: compare ``--processes 2 --threads 1`` with ``--processes 1 --threads 2`` to choose
INFERENCE_THREADS.

Ends with one line of figures.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

DATA_DIR = REPO_ROOT.parent / "shared" / "data" / "fetal-planes"
MIN_BATCHES = 4  # a round's, at each batch size
MIN_IMAGES = 48


def _rss_mb(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _images(input_size: int):
    """The test split, preprocessed once (float32, N x S x S x 3), and what it is."""
    import numpy as np

    if (DATA_DIR / "manifest.csv").is_file():
        from classifier.ml.data import load_array, read_manifest

        records = [record for record in read_manifest(DATA_DIR) if record.split == "test"]
        return load_array(DATA_DIR, records, input_size).astype(np.float32), f"{len(records)} real test images"
    rng = np.random.default_rng(0)
    return rng.uniform(0, 255, (128, input_size, input_size, 3)).astype(np.float32), "128 random images"


def _load(runtime: str, card_path: Path, threads: int):
    from classifier.ml.card import read_card

    card = read_card(card_path)
    if runtime == "litert":
        from classifier.ml.litert import LiteRtPlaneClassifier

        return LiteRtPlaneClassifier.from_card(card, card_path.parent, num_threads=threads)
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    from classifier.ml.inference import PlaneClassifier

    return PlaneClassifier.from_card(card, card_path.parent / card["file"])


def _time_size(classifier, images, size: int) -> list[float]:
    """Milliseconds per image of each timed batch of ``size`` in one round, cycling through ``images``."""
    batches = max(MIN_BATCHES, math.ceil(MIN_IMAGES / size))
    for start in (0, size):  # warm up this input shape (LiteRT resizes, TensorFlow may pick kernels)
        classifier.predict_outputs(_take(images, start, size))
    timings = []
    for index in range(batches):
        batch = _take(images, index * size, size)
        started = time.perf_counter()
        classifier.predict_outputs(batch)
        timings.append((time.perf_counter() - started) * 1000 / size)
    return timings


def _take(images, start: int, size: int):
    import numpy as np

    rows = [(start + offset) % len(images) for offset in range(size)]
    return np.ascontiguousarray(images[rows])


def child(args) -> int:
    """One runtime in this process: load it and say so (one JSON line), then answer the parent's commands on
    stdin, one JSON line each: ``size N`` (one round of batches of N), ``run S`` (batch 1 for S seconds: how many
    images), ``quit`` (the peak RSS)."""
    from classifier.ml.card import read_card

    images, what = _images(int(read_card(args.card)["input_size"]))  # before the clock: not the runtime's work
    started = time.perf_counter()
    classifier = _load(args.child, Path(args.card), args.threads)
    classifier.predict_outputs(images[:1])
    result = {"runtime": classifier.runtime, "images": what, "load_s": time.perf_counter() - started}
    result["rss_mb"] = _rss_mb()  # the images (about 26 MB as float32 for 131 at 256 px) are in it too
    result["tensorflow_imported"] = "tensorflow" in sys.modules
    print(json.dumps(result), flush=True)
    for line in sys.stdin:
        command, _, value = line.strip().partition(" ")
        if command == "size":
            print(json.dumps(_time_size(classifier, images, int(value))), flush=True)
        elif command == "run":
            done, until = 0, time.perf_counter() + float(value)
            while time.perf_counter() < until:
                classifier.predict_outputs(_take(images, done, 1))
                done += 1
            print(json.dumps(done), flush=True)
        else:
            break
    print(json.dumps(_rss_mb("VmHWM")), flush=True)
    return 0


class Child:
    """A runtime's process, driven line by line."""

    def __init__(self, args, runtime: str):
        command = [sys.executable, __file__, "--child", runtime, "--card", args.card, "--threads", str(args.threads)]
        self.process = subprocess.Popen(  # noqa: S603 - this script, by the same interpreter
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=_quiet_env()
        )
        self.loaded = self._answer()

    def ask(self, command: str):
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self._answer()

    def _answer(self):
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the benchmark's child process ended (exit {self.process.wait()})")
        return json.loads(line)

    def close(self) -> float:
        peak = self.ask("quit")
        self.process.wait()
        return peak


def _quiet_env() -> dict[str, str]:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO_ROOT)}


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)]


def _median(values: list[float]) -> float:
    return statistics.median(values)


def run_sizes(args) -> list[str]:
    children = [Child(args, runtime) for runtime in args.runtimes]  # loaded one after the other
    rows: dict[str, dict[int, list[float]]] = {runtime: {size: [] for size in args.sizes} for runtime in args.runtimes}
    for round_index in range(args.rounds):  # taking turns, so a change in the machine's load falls on each alike
        for size in args.sizes:
            order = children if round_index % 2 == 0 else children[::-1]
            for proc in order:
                rows[proc.loaded["runtime"]][size] += proc.ask(f"size {size}")
    figures = []
    for proc in children:
        runtime, loaded, peak = proc.loaded["runtime"], proc.loaded, proc.close()
        timings = rows[runtime]
        best = min(timings, key=lambda size: _median(timings[size]))
        print(
            f"\n{runtime}: load {loaded['load_s']:.2f} s, RSS after load {loaded['rss_mb']:.0f} MB "
            f"(peak {peak:.0f} MB), TensorFlow imported: {loaded['tensorflow_imported']}, {loaded['images']}"
        )
        print("  batch | ms/image median | p95   | images/s (median)")
        for size, values in timings.items():
            median = _median(values)
            mark = " (best)" if size == best else ""
            print(f"  {size:5d} | {median:15.1f} | {_percentile(values, 0.95):5.1f} | {1000 / median:6.1f}{mark}")
        one, top = timings[min(timings)], timings[best]
        figures.append(
            f"{runtime} b{min(timings)} {_median(one):.1f} ms (p95 {_percentile(one, 0.95):.1f}), best b{best} "
            f"{_median(top):.1f} ms (p95 {_percentile(top, 0.95):.1f}), load {loaded['load_s']:.2f} s, "
            f"RSS {loaded['rss_mb']:.0f} MB"
        )
    return figures


def run_processes(args) -> list[str]:
    figures = []
    for runtime in args.runtimes:
        children = [Child(args, runtime) for _ in range(args.processes)]  # every one loaded and warm
        for proc in children:
            proc.process.stdin.write(f"run {args.seconds}\n")
            proc.process.stdin.flush()
        per_second = sum(proc._answer() for proc in children) / args.seconds
        peaks = ", ".join(f"{proc.close():.0f}" for proc in children)
        load_s = max(proc.loaded["load_s"] for proc in children)
        print(
            f"\n{runtime}: {args.processes} processes x {args.threads} threads, batch 1 for {args.seconds:.0f} s: "
            f"{per_second:.1f} images/s together; load {load_s:.2f} s, peak RSS {peaks} MB"
        )
        figures.append(f"{runtime} {args.processes}x{args.threads} threads {per_second:.1f} img/s")
    return figures


def main() -> int:
    from classifier.ml.card import newest_card

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--card", default=str(newest_card(REPO_ROOT / "models")))
    parser.add_argument("--runtimes", default="keras,litert", type=lambda text: text.split(","))
    parser.add_argument("--sizes", default="1,2,4,8,16,32", type=lambda text: [int(n) for n in text.split(",")])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--processes", type=int, default=0, help="P processes at once, batch 1 (see above)")
    parser.add_argument("--seconds", type=float, default=20.0, help="with --processes: how long each predicts")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=3, help="turns each runtime takes at each batch size")
    args = parser.parse_args()
    if args.child:
        return child(args)

    git = ["git", "rev-parse", "--short", "HEAD"]
    commit = subprocess.run(git, capture_output=True, text=True, cwd=REPO_ROOT, check=False)  # noqa: S603, S607
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "?")
    load_start = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores ({cpu}), {platform.system()} {platform.machine()}, Python "
          f"{platform.python_version()}; commit {commit.stdout.strip()}; card {Path(args.card).name}")  # fmt: skip
    print("load average at start: " + " ".join(f"{value:.2f}" for value in load_start))
    figures = run_processes(args) if args.processes else run_sizes(args)
    load_end = os.getloadavg()
    print("\nload average at end: " + " ".join(f"{value:.2f}" for value in load_end))
    print(f"threads {args.threads}; load {load_start[0]:.2f}->{load_end[0]:.2f}; " + "; ".join(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
