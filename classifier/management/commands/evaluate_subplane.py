"""Can the plane classifier's features suggest the brain sub-plane? A patient-grouped cross-validation."""

import json
import platform
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Cross-validate, by patient, a logistic regression on the plane classifier's features that tells the "
        "trans-thalamic, trans-cerebellar and trans-ventricular brain planes apart, and judge it by the rule "
        "fixed in docs/biometry.md. Reports; changes nothing in the app."
    )
    # An offline study of files: the URL and model checks have nothing to say about it (and another app's
    # half-finished work must not stop it).
    requires_system_checks: list[str] = []

    def add_arguments(self, parser):
        parser.add_argument("--data", default="../shared/data/fetal-planes")
        parser.add_argument("--card", default=None, help="default: fetal-planes-v3.card.json in MODELS_DIR")
        parser.add_argument("--folds", type=int, default=5)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--json-out", default=None, help="default: fetal-brain-subplane.crossval.json in MODELS_DIR"
        )

    def handle(self, *args, **options):
        from classifier.ml.subplane import evaluate, format_report

        data = Path(options["data"])
        if not (data / "manifest.csv").is_file():
            raise CommandError(f"no manifest.csv in {data}")
        card = Path(options["card"] or Path(settings.MODELS_DIR) / "fetal-planes-v3.card.json")
        started = time.perf_counter()
        try:
            result = evaluate(data, card, folds=options["folds"], seed=options["seed"])
        except ValueError as error:
            raise CommandError(str(error)) from error
        result["run"] = {
            "wall_seconds": round(time.perf_counter() - started, 1),
            "finished_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "command": f"manage.py evaluate_subplane --data {options['data']} --folds {options['folds']} "
            f"--seed {options['seed']}",
            "machine": f"{platform.machine()}, {platform.python_version()}",
        }
        out = Path(options["json_out"] or Path(settings.MODELS_DIR) / "fetal-brain-subplane.crossval.json")
        out.write_text(json.dumps(result, indent=2) + "\n")
        self.stdout.write(format_report(result))
        self.stdout.write(f"written to {out}")
