"""patients' answers to signals sent by the apps below it, which may not import patients."""

from __future__ import annotations

from django.dispatch import receiver

from classifier.signals import cine_key_frames_found
from patients.models import UltrasoundImage
from patients.services import cine_key_frames_store


@receiver(cine_key_frames_found, dispatch_uid="patients.cine_key_frames_store")
def key_frames_found(sender, *, clip_id: int, key_frames: list, **kwargs) -> None:
    """A clip's job chose its key frames: store them as stills, in the job's transaction."""
    cine_key_frames_store(clip=UltrasoundImage.objects.get(id=clip_id), key_frames=key_frames)
