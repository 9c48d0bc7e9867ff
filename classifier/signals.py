"""Signals the classifier sends to the apps above it, which it may not import."""

from django.dispatch import Signal

# A clip's job found its key frames; sent inside the transaction that saves its CineFrames, so whatever a
# receiver stores commits with them or not at all. Keyword arguments: ``clip_id`` (the clip's image id) and
# ``key_frames`` (a list of classifier.ml.keyframes.KeyFrame). patients stores each as a still (patients/receivers.py).
cine_key_frames_found = Signal()

# An image's plane was set: by the model (a still's prediction saved) or by a clinician's review (confirmed,
# corrected, or not a standard plane). Sent inside the transaction that saves it. Keyword arguments:
# ``image_id``, ``plane`` (the image's plane now, a classifier.labels.PLANE_LABELS value, or "" when a clinician
# said it is no standard plane), ``reviewed`` (True for a review). biometry measures brain planes
# (biometry/receivers.py). Sent with ``send_robust`` and each receiver in its own savepoint: a receiver's error is
# logged and never undoes the prediction or the review.
image_plane_set = Signal()
