"""Receivers of the classifier's signals (the classifier sits below biometry and may not import it)."""

from __future__ import annotations

from django.dispatch import receiver

from classifier.signals import image_plane_set


@receiver(image_plane_set, dispatch_uid="biometry.measure_brain_planes")
def measure_brain_planes(sender, *, image_id: int, plane: str, reviewed: bool, **kwargs) -> None:
    """A brain plane (the model's suggestion or a clinician's review) is measured; a plane corrected away from
    brain flags the image's measurements ``not_brain``. Runs in its own savepoint inside the classifier's
    transaction (``measurement_plane_update``), so a failure here never undoes the prediction or review."""
    from biometry.services import measurement_plane_update

    measurement_plane_update(image_id=image_id, plane=plane)
