"""Signals the classifier sends to the apps above it, which it may not import."""

from django.dispatch import Signal

# A clip's job found its key frames; sent inside the transaction that saves its CineFrames, so whatever a
# receiver stores commits with them or not at all. Keyword arguments: ``clip_id`` (the clip's image id) and
# ``key_frames`` (a list of classifier.ml.keyframes.KeyFrame). patients stores each as a still (patients/receivers.py).
cine_key_frames_found = Signal()
