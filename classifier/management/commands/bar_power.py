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
        from classifier.ml.bar_power import split_support
        from classifier.ml.data import CLASS_NAMES

        sizes = options["per_class"] or options["scale"]
        if options["draws"] < 1 or min(sizes) < 1:
            raise CommandError("--draws, --scale and --per-class must be at least 1")
        records, crossval_counts = self._read_inputs(options)
        support = split_support(((r.source, r.label) for r in records if r.split == "test" and r.is_fetal), CLASS_NAMES)
        counts, ways = self._error_counts(options, crossval_counts, support)
        for size in sizes:
            self._simulate_size(options, counts, support, size=size, ways=ways)

    def _read_inputs(self, options) -> tuple[list, dict | None]:
        """The manifest's rows and, with --crossval, the out-of-fold confusion counts per source."""
        from classifier.ml.bar_power import out_of_fold_counts
        from classifier.ml.data import CLASS_NAMES, read_manifest

        try:
            records = read_manifest(options["data"])
            if not options["crossval"]:
                return records, None
            with open(options["crossval"]) as handle:
                return records, out_of_fold_counts(json.load(handle)["out_of_fold"], CLASS_NAMES)
        except (OSError, ValueError, KeyError) as error:
            raise CommandError(f"cannot read the inputs: {error}") from error

    def _error_counts(self, options, crossval_counts: dict | None, support: dict) -> tuple[dict, tuple[bool, ...]]:
        """The error rates to simulate per source and the ways to draw them (plug-in and/or posterior)."""
        from classifier.ml.bar_power import assumed_rates
        from classifier.ml.data import CLASS_NAMES

        if crossval_counts is not None:
            for source, matrix in sorted(crossval_counts.items()):
                self.stdout.write(f"out-of-fold {source} (rows true): {matrix.tolist()}")
            return crossval_counts, (False, True)
        try:
            rates = assumed_rates(options["assume_recall"], len(CLASS_NAMES))
        except ValueError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(f"assumed: recall {options['assume_recall']} on every class of every source")
        return {source: rates for source in support}, (True,)

    def _simulate_size(self, options, counts: dict, support: dict, *, size: int, ways: tuple[bool, ...]) -> None:
        """Print the simulated chance of meeting the bar on a test split ``size`` times (or per class) as big."""
        import numpy as np

        from classifier.ml.bar_power import format_simulation, simulate
        from classifier.ml.data import CLASS_NAMES

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
