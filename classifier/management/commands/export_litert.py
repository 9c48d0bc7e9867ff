"""Export a model card's model to LiteRT (.tflite, float32, BatchNorm folded) and record it in the card."""

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Write models/<name>.tflite next to the card's .keras file, check its outputs against Keras on the test "
        "images, and record it in the card's `runtimes` (JSON and Markdown). Register the card again afterwards "
        "(manage.py register_models) so that workers load it."
    )

    def add_arguments(self, parser):
        parser.add_argument("card", help="the .card.json of the model to export")
        parser.add_argument("--data", default="../shared/data/fetal-planes", help="the data set with the test split")

    def handle(self, *args, card, data, **options):
        from classifier.ml.litert import export_card, litert_entry

        entry = litert_entry(export_card(card, data_dir=data))
        self.stdout.write(
            f"Wrote {entry['file']} ({entry['bytes']} bytes, sha256 {entry['sha256']}): max abs difference from "
            f"Keras {entry['max_abs_diff_vs_keras']:.2e} on {entry['checked_on']}"
        )
