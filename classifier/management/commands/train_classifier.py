"""Train the fetal plane classifier and write ``models/fetal-planes-v<N>.{keras,card.json,card.md}``."""

from argparse import ArgumentTypeError
from dataclasses import fields

from django.core.management.base import BaseCommand, CommandError


def float_list(text: str) -> tuple[float, ...]:
    """ "0,0.4,-0.2,-0.2" -> a tuple of floats, one per class."""
    from classifier.ml.data import CLASS_NAMES

    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise ArgumentTypeError(f"expected {len(CLASS_NAMES)} comma-separated numbers, got {text!r}") from None
    if len(values) != len(CLASS_NAMES):
        raise ArgumentTypeError(f"expected {len(CLASS_NAMES)} numbers ({', '.join(CLASS_NAMES)}), got {len(values)}")
    return values


def add_config_arguments(parser) -> None:
    """One option per TrainConfig field, None unless given."""
    from classifier.ml.efficientnet_lite import BACKBONES
    from classifier.ml.train import TrainConfig

    for field in fields(TrainConfig):
        kind = int if field.name == "limit_per_label" else type(field.default)
        kind = float_list if kind is tuple else kind
        choices = sorted(BACKBONES) if field.name == "backbone" else None
        parser.add_argument(
            f"--{field.name.replace('_', '-')}",
            type=kind,
            choices=choices,
            default=None,
            help=f"default {field.default}",
        )


def config_from(options: dict):
    from classifier.ml.train import TrainConfig

    return TrainConfig(**{f.name: options[f.name] for f in fields(TrainConfig) if options.get(f.name) is not None})


class Command(BaseCommand):
    help = "Train the plane classifier reproducibly from the fetal-planes data set and write the model with its card."

    def add_arguments(self, parser):
        parser.add_argument("--data", default="../shared/data/fetal-planes", help="folder holding manifest.csv")
        parser.add_argument("--out", default="models", help="where the .keras file and its cards go")
        parser.add_argument(
            "--model-version", default=None, help="version in the file name and card (default: the next free one)"
        )
        parser.add_argument(
            "--overwrite", action="store_true", help="replace that version's files if they exist (never the default)"
        )
        add_config_arguments(parser)

    def handle(self, *args, **options):
        from classifier.ml.card import card_paths
        from classifier.ml.train import MODEL_NAME, next_version, train

        version = options["model_version"] or next_version(options["out"])
        existing = [path for path in card_paths(options["out"], MODEL_NAME, version) if path.exists()]
        if existing and not options["overwrite"]:
            # A registered model's file must never change under its name: the worker refuses it by sha256.
            raise CommandError(
                f"{', '.join(map(str, existing))} already exist(s); choose another --model-version, "
                "another --out, or pass --overwrite"
            )
        card = train(
            data_dir=options["data"],
            out_dir=options["out"],
            version=version,
            config=config_from(options),
            log=lambda message: self.stdout.write(message),
        )
        test = card["metrics"]["test"]
        self.stdout.write(
            self.style.SUCCESS(
                f"{card['name']} v{card['version']}: test accuracy {test['accuracy']:.3f}, "
                f"macro-F1 {test['macro_f1']:.3f}, threshold {card['needs_review_threshold']:.2f}"
            )
        )
