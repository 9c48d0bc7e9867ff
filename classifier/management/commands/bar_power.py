"""How often a model with given error rates would meet the bar on a test split of a given make-up."""

import json

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Simulate the test split and print how often the bar would be met, for a recipe's cross-validated "
        "error rates (--crossval) or an assumed recall on every class (--assume-recall). --scale multiplies the "
        "test split; --per-class sets N images per class and source instead. Reads the test split's make-up only."
    )

    def add_arguments(self, parser):
        rates = parser.add_mutually_exclusive_group(required=True)
        rates.add_argument("--crossval", help="a crossval_classifier --json-out file")
        rates.add_argument("--assume-recall", type=float, help="every class's true recall, errors spread evenly")
        parser.add_argument("--data", default="../shared/data/fetal-planes")
        sizes = parser.add_mutually_exclusive_group()
        sizes.add_argument("--scale", type=int, nargs="+", default=[1], help="test split sizes, as multiples")
        sizes.add_argument("--per-class", type=int, nargs="+", help="test images per class and source")
        parser.add_argument("--draws", type=int, default=20000)
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, **options):
        import numpy as np

        from classifier.ml.bar_power import (
            assumed_rates,
            format_simulation,
            out_of_fold_counts,
            simulate,
            split_support,
        )
        from classifier.ml.data import CLASS_NAMES, read_manifest

        sizes = options["per_class"] or options["scale"]
        if options["draws"] < 1 or min(sizes) < 1:
            raise CommandError("--draws, --scale and --per-class must be at least 1")
        try:
            records = read_manifest(options["data"])
            if options["crossval"]:
                with open(options["crossval"]) as handle:
                    counts = out_of_fold_counts(json.load(handle)["out_of_fold"], CLASS_NAMES)
        except (OSError, ValueError, KeyError) as error:
            raise CommandError(f"cannot read the inputs: {error}") from error
        support = split_support(((r.source, r.label) for r in records if r.split == "test" and r.is_fetal), CLASS_NAMES)
        if options["crossval"]:
            for source, matrix in sorted(counts.items()):
                self.stdout.write(f"out-of-fold {source} (rows true): {matrix.tolist()}")
            ways = (False, True)
        else:
            try:
                rates = assumed_rates(options["assume_recall"], len(CLASS_NAMES))
            except ValueError as error:
                raise CommandError(str(error)) from error
            counts = {source: rates for source in support}
            self.stdout.write(f"assumed: recall {options['assume_recall']} on every class of every source")
            ways = (True,)
        for size in sizes:
            if options["per_class"]:
                scaled = {source: np.full(len(CLASS_NAMES), size) for source in support}
                label = f"{size} per class and source"
            else:
                scaled = {source: n * size for source, n in support.items()}
                label = f"x{size}"
            described = ", ".join(f"{source} {n.tolist()}" for source, n in scaled.items())
            self.stdout.write(f"test split {label}: {described} (brain, thorax, abdomen, femur)")
            for plug_in in ways:
                try:
                    result = simulate(
                        counts, scaled, CLASS_NAMES, draws=options["draws"], seed=options["seed"], plug_in=plug_in
                    )
                except ValueError as error:
                    raise CommandError(str(error)) from error
                self.stdout.write(format_simulation(result))
