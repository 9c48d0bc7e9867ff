"""Train the fetal-skull segmenter on HC18 (issue 21) and write it with its card."""

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Train the U-Net on HC18's train split (subject-level split of biometry.ml.seg_data), keep the epoch of "
        "lowest val loss and write <out>/<name>.{keras,tflite,card.json,card.md}. Test figures: evaluate_segmenter."
    )

    def add_arguments(self, parser):
        parser.add_argument("--data", default="../shared/data/hc18")
        parser.add_argument("--out", default="models")
        parser.add_argument("--name", default="fetal-head-v1", help="file stem, <model>-v<version>")
        parser.add_argument("--epochs", type=int)
        parser.add_argument("--limit", type=int, help="smoke run: this many train images")
        parser.add_argument("--input-width", type=int)
        parser.add_argument("--input-height", type=int)
        parser.add_argument("--encoder", choices=("lite0", "tiny"))
        parser.add_argument("--batch-size", type=int)
        parser.add_argument("--seed", type=int)
        parser.add_argument("--frozen-blocks", type=int)
        parser.add_argument("--learning-rate", type=float)
        parser.add_argument(
            "--full-resolution-stage", action="store_true", default=None, help="decoder stage at the input's size"
        )
        parser.add_argument("--init-from", help="a segmentation card whose weights start the same-named layers")
        parser.add_argument("--max-train-minutes", type=float, help="stop early rather than run past this")

    def handle(self, *args, data, out, name, **options):
        from biometry.ml.seg_train import SegTrainConfig, train_segmenter

        fields = (
            "epochs",
            "limit",
            "input_width",
            "input_height",
            "encoder",
            "batch_size",
            "seed",
            "frozen_blocks",
            "max_train_minutes",
            "learning_rate",
            "full_resolution_stage",
            "init_from",
        )
        config = SegTrainConfig(**{key: options[key] for key in fields if options.get(key) is not None})
        model, _, version = name.rpartition("-v")
        if not model or not version:
            model, version = name, "1"
        card = train_segmenter(data, out, name=model, version=version, config=config, log=self.stdout.write)
        self.stdout.write(f"wrote {out}/{card['file']} and its card")
