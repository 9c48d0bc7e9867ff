"""Evaluate the fetal-skull segmenter on a split of HC18 and write the figures into its card."""

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "HC against the sonographer, Dice, BPD/OFD against the annotation ellipses and milliseconds per image, "
        "with subject-level bootstrap CIs, on one split of HC18 (test by default: run it once); written into the "
        "card's metrics.<split> (JSON and Markdown)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--data", default="../shared/data/hc18")
        parser.add_argument("--card", help="default: settings.BIOMETRY_MODEL_CARD, the model the app measures with")
        parser.add_argument("--split", default="test", choices=("train", "val", "test"))
        parser.add_argument("--runtime", choices=("keras", "litert"), help="default: LiteRT when the card has it")
        parser.add_argument("--limit", type=int, help="only the first N images of the split (smoke runs)")
        parser.add_argument("--threads", type=int, default=1, help="LiteRT interpreter threads")
        parser.add_argument("--no-write", action="store_true", help="print only; leave the card as it is")

    def handle(self, *args, data, card, split, runtime, limit, threads, no_write, **options):
        import json

        from django.conf import settings

        from biometry.ml.seg_evaluate import evaluate_split

        card = card or settings.BIOMETRY_MODEL_CARD
        summary = evaluate_split(
            data, card, split=split, runtime=runtime, limit=limit, num_threads=threads, write=not no_write
        )
        self.stdout.write(json.dumps(summary, indent=2))
