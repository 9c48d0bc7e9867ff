"""Key frames of a clip: per plane, the frame that shows it best, as a still a person can review.

The rule, in one place (``key_frame_choices``): a plane's key frame is, among the frames the review rule does
not flag and that the model labels with that plane, the one with the highest confidence; on a tie the earliest.
A plane no unflagged frame shows gets no key frame: there is nothing trustworthy to show for it.

``KeyFramePicker`` applies the same rule batch by batch while the frames stream past, holding only the
current best frame of each plane (at most one per class), so a clip is decoded once however long it is.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from classifier.ml.preprocessing import to_8bit


@dataclass(frozen=True)
class KeyFrame:
    label: str
    frame_index: int  # counted from 0
    confidence: float  # the frame's probability of ``label``, its top one
    png: bytes  # the decoded frame as it came, 8-bit, encoded as PNG without metadata


@dataclass(frozen=True)
class KeyFrameChoice:
    label: str
    frame_index: int
    confidence: float


def key_frame_choices(
    probabilities: np.ndarray, flags: np.ndarray, class_names: Sequence[str], *, first_index: int = 0
) -> list[KeyFrameChoice]:
    """Per plane, the unflagged frame labelled with it of highest confidence (ties: the earliest), in
    ``class_names`` order; ``first_index`` is the index of row 0 (a batch in the middle of a clip)."""
    probabilities = np.asarray(probabilities)
    if len(probabilities) == 0:
        return []
    labels = probabilities.argmax(axis=1)
    confidences = probabilities.max(axis=1)
    eligible = ~np.asarray(flags, dtype=bool)
    choices = []
    for plane, name in enumerate(class_names):
        candidates = np.flatnonzero(eligible & (labels == plane))
        if len(candidates) == 0:
            continue
        best = candidates[np.argmax(confidences[candidates])]  # argmax returns the first of equal maxima
        choices.append(KeyFrameChoice(name, first_index + int(best), float(confidences[best])))
    return choices


class KeyFramePicker:
    """Keeps, while a clip streams past batch by batch, the best frame so far of each plane.

    ``offer_batch`` has the shape of ``PlaneClassifier.classify_frames``'s ``on_batch``.
    """

    def __init__(self, class_names: Sequence[str]):
        self.class_names = list(class_names)
        self._best: dict[str, tuple[KeyFrameChoice, Image.Image]] = {}

    def offer_batch(
        self, first_index: int, frames: Sequence[Image.Image], probabilities: np.ndarray, flags: np.ndarray
    ) -> None:
        for choice in key_frame_choices(probabilities, flags, self.class_names, first_index=first_index):
            current = self._best.get(choice.label)
            # Strictly higher only: an equal confidence later in the clip leaves the earlier frame.
            if current is None or choice.confidence > current[0].confidence:
                # A copy: a decoder may hand out frames that share one buffer.
                self._best[choice.label] = (choice, frames[choice.frame_index - first_index].copy())

    @property
    def held_frames(self) -> int:
        return len(self._best)

    def key_frames(self) -> list[KeyFrame]:
        """The key frames in ``class_names`` order, each encoded as PNG."""
        return [
            KeyFrame(choice.label, choice.frame_index, choice.confidence, frame_png(frame))
            for name in self.class_names
            if name in self._best
            for choice, frame in [self._best[name]]
        ]


def frame_png(frame: Image.Image) -> bytes:
    """A frame as PNG, encoded as an upload's display rendition is (8-bit grey or RGB, no metadata)."""
    pixels = np.asarray(to_8bit(frame))  # through an array: nothing of the decoder's ``info`` is written
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()
