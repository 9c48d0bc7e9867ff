"""The four fetal planes the product classifies, in the model's output order."""

from django.db import models


class FetalPlane(models.TextChoices):
    BRAIN = "fetal_brain", "Fetal brain"
    THORAX = "fetal_thorax", "Fetal thorax"
    ABDOMEN = "fetal_abdomen", "Fetal abdomen"
    FEMUR = "fetal_femur", "Fetal femur"


PLANE_LABELS = [plane.value for plane in FetalPlane]


def plane_display(label: str) -> str:
    try:
        return FetalPlane(label).label
    except ValueError:
        return label
