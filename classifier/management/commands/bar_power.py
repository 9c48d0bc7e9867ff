"""How often a recipe with its cross-validated error rates would meet the bar on the test split."""

import json

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Simulate the test split from a cross-validation's out-of-fold predictions and print how often the bar "
        "would be met; --scale shows a test split k times as large. Reads the test split's make-up only."
    )

    def add_arguments(self, parser):
        parser.add_argument("--crossval", required=True, help="a crossval_classifier --json-out file")
        parser.add_argument("--data", default="../shared/data/fetal-planes")
        parser.add_argument("--scale", type=int, nargs="+", default=[1], help="test split sizes, as multiples")
        parser.add_argument("--draws", type=int, default=20000)
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, **options):
        from classifier.ml.bar_power import format_simulation, out_of_fold_counts, simulate, split_support
        from classifier.ml.data import CLASS_NAMES, read_manifest

        try:
            with open(options["crossval"]) as handle:
                rows = json.load(handle)["out_of_fold"]
            records = read_manifest(options["data"])
        except (OSError, ValueError, KeyError) as error:
            raise CommandError(f"cannot read the inputs: {error}") from error
        if options["draws"] < 1 or min(options["scale"]) < 1:
            raise CommandError("--draws and --scale must be at least 1")
        counts = out_of_fold_counts(rows, CLASS_NAMES)
        support = split_support(((r.source, r.label) for r in records if r.split == "test" and r.is_fetal), CLASS_NAMES)
        for source, matrix in sorted(counts.items()):
            self.stdout.write(f"out-of-fold {source} (rows true): {matrix.tolist()}")
        for scale in options["scale"]:
            scaled = {source: n * scale for source, n in support.items()}
            described = ", ".join(f"{source} {n.tolist()}" for source, n in scaled.items())
            self.stdout.write(f"test split x{scale}: {described} (brain, thorax, abdomen, femur)")
            for plug_in in (False, True):
                try:
                    result = simulate(
                        counts, scaled, CLASS_NAMES, draws=options["draws"], seed=options["seed"], plug_in=plug_in
                    )
                except ValueError as error:
                    raise CommandError(str(error)) from error
                self.stdout.write(format_simulation(result))
