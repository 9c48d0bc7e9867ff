"""Register every plane-classifier card in MODELS_DIR; activate the newest when none is active."""

import re
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from classifier.ml.card import is_plane_card
from classifier.selectors import active_model_version
from classifier.services import model_version_register


def _natural(path: Path) -> list:
    """Sort key that puts v10 after v9."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


class Command(BaseCommand):
    help = (
        "Register the plane classifier's cards (*.card.json) found in MODELS_DIR, checking each file's sha256; "
        "cards of other tasks there (the head segmenter's) are left to their own apps."
    )

    def add_arguments(self, parser):
        parser.add_argument("cards", nargs="*", help="Card files (default: every *.card.json in MODELS_DIR).")
        parser.add_argument("--activate", action="store_true", help="Make the last card given the active model.")

    def handle(self, *args, cards, activate, **options):
        found = sorted(Path(settings.MODELS_DIR).glob("*.card.json"), key=_natural)
        paths = [Path(card) for card in cards] or [path for path in found if is_plane_card(path)]
        if not paths:
            self.stdout.write(f"No model cards in {settings.MODELS_DIR}; uploads will fail with 'no active model'.")
            return
        registered = None
        for path in paths:
            try:
                registered = model_version_register(card_path=path)
            except ValidationError as error:
                raise CommandError("; ".join(error.messages)) from error
            self.stdout.write(f"Registered {registered}")
        if activate or active_model_version() is None:
            model_version_register(card_path=paths[-1], activate=True)
            self.stdout.write(f"Active model: {active_model_version()}")
