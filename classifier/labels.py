"""The four fetal planes the product classifies, in the model's output order.

The list itself is the ML core's (``classifier.ml.data.CLASS_NAMES``, which training and evaluation use);
this module only gives Django its choices and display names, so the planes are written down once."""

from django.db import models

from classifier.ml.data import CLASS_NAMES

# Members FETAL_BRAIN, FETAL_THORAX, ...: value "fetal_brain", label "Fetal brain".
FetalPlane = models.TextChoices(
    "FetalPlane", [(name.upper(), (name, name.replace("_", " ").capitalize())) for name in CLASS_NAMES]
)

PLANE_LABELS = [plane.value for plane in FetalPlane]


def plane_display(label: str) -> str:
    try:
        return FetalPlane(label).label
    except ValueError:
        return label
