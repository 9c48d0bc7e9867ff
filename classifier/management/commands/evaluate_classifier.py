"""Evaluate a model described by its card on one split of the fetal-planes data set."""

import json

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Evaluate a model card's model on a split and list what falls short of the bar of the model issue; "
        "--check-bar also exits with an error then."
    )

    def add_arguments(self, parser):
        parser.add_argument("--card", default=None, help="default: the newest card in MODELS_DIR")
        parser.add_argument("--data", default="../shared/data/fetal-planes")
        parser.add_argument("--split", default="test", choices=["train", "val", "test"])
        parser.add_argument("--limit", type=int, default=None, help="at most this many images per label")
        parser.add_argument("--json-out", default=None, help="write the full metrics here")
        parser.add_argument("--check-bar", action="store_true")

    def handle(self, *args, **options):
        from classifier.ml.card import newest_card
        from classifier.ml.evaluate import bar_failures, evaluate_card, format_report

        card = options["card"] or newest_card(settings.MODELS_DIR)
        if card is None:
            raise CommandError(f"no model card in {settings.MODELS_DIR}; pass --card")
        result = evaluate_card(card, data_dir=options["data"], split=options["split"], limit=options["limit"])
        self.stdout.write(format_report(result))
        if options["json_out"]:
            with open(options["json_out"], "w") as handle:
                json.dump(result, handle, indent=2)
        # Always say where the model stands against the bar, so a miss is read here, not found in a test.
        failures = bar_failures(result)
        if failures:
            self.stdout.write(self.style.WARNING(f"below the bar of the model issue ({len(failures)}):"))
            for failure in failures:
                self.stdout.write(self.style.WARNING(f"  {failure}"))
        else:
            self.stdout.write(self.style.SUCCESS("the bar is met"))
        if options["check_bar"] and failures:
            raise CommandError("below the bar: " + "; ".join(failures))
