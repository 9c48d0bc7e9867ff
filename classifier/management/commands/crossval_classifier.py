"""Patient-level cross-validation of the training recipe on train + val (the test split is left out)."""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from classifier.management.commands.train_classifier import add_config_arguments, config_from


class Command(BaseCommand):
    help = "Cross-validate the training recipe by patient on train + val and print the pooled held-out figures."

    def add_arguments(self, parser):
        parser.add_argument("--data", default="../shared/data/fetal-planes", help="folder holding manifest.csv")
        parser.add_argument("--folds", type=int, default=5)
        parser.add_argument(
            "--folds-seed",
            type=int,
            default=20261127,
            help="shuffles patients into folds; another value (with another --seed) gives an independent replicate",
        )
        parser.add_argument(
            "--train-share",
            type=float,
            default=1.0,
            help="keep this share of each fold's training patients (a learning curve; held-out images unchanged)",
        )
        parser.add_argument("--json-out", default=None, help="write the figures here as JSON")
        add_config_arguments(parser)

    def handle(self, *args, **options):
        from classifier.ml.crossval import cross_validate

        if not 0 < options["train_share"] <= 1:
            raise CommandError(f"--train-share must be in (0, 1], not {options['train_share']}")
        result = cross_validate(
            data_dir=options["data"],
            folds=options["folds"],
            seed=options["folds_seed"],
            train_share=options["train_share"],
            config=config_from(options),
            log=lambda message: self.stdout.write(message),
        )
        if options["json_out"]:
            Path(options["json_out"]).write_text(json.dumps(result, indent=2) + "\n")
        self._figures("as trained", {"all": result["pooled"], **result["pooled_by_source"]})
        study = result["out_of_fold_study"]
        offsets = study["class_offsets"]
        self._figures("class offsets, cross-fitted", offsets["cross_fitted"])
        self.stdout.write(f"class offsets fitted on all folds (for --class-offsets): {offsets['fitted_on_all_folds']}")
        self._figures("mirrored average", study["mirrored_average"])

    def _figures(self, title: str, blocks: dict) -> None:
        self.stdout.write(f"{title}:")
        for name, block in blocks.items():
            recalls = ", ".join(f"{k} {v['recall']:.3f} ({v['support']})" for k, v in block["per_class"].items())
            self.stdout.write(
                f"  {name}: n {block['n']}, accuracy {block['accuracy']:.3f}, macro-F1 {block['macro_f1']:.3f}; "
                f"recall {recalls}"
            )
