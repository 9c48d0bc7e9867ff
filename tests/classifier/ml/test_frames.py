"""classifier.ml.frames: a clip's frames one at a time, displayed as a single-frame DICOM file is."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from classifier.ml.frames import ClipError, clip_info, iter_frames
from tests.cine_samples import make_avi, make_multiframe_dicom, sweep


def test_frames_are_yielded_one_at_a_time():
    frames = iter_frames(make_avi(8))
    assert inspect.isgenerator(frames)
    assert next(frames).size == (320, 240)


def test_monochrome1_frames_are_inverted_like_a_single_frame():
    source = list(sweep(4, size=(160, 120)))
    shown = [np.asarray(f) for f in iter_frames(make_multiframe_dicom(4, photometric="MONOCHROME1"))]
    assert all(np.array_equal(s, 255 - f) for s, f in zip(shown, source, strict=True))


def test_palette_frames_go_through_the_lookup_table():
    frames = list(iter_frames(make_multiframe_dicom(3, photometric="PALETTE COLOR")))
    assert [f.mode for f in frames] == ["RGB"] * 3
    first = np.asarray(frames[0])
    grey = next(sweep(3, size=(160, 120)))
    assert np.array_equal(first[..., 0], grey) and np.array_equal(first[..., 1], 255 - grey)


def test_the_sweep_moves_between_frames_and_changes_plane():
    frames = list(sweep(10, size=(160, 120)))
    assert not np.array_equal(frames[0], frames[1])  # a probe's small shift
    assert (
        np.abs(frames[4].astype(int) - frames[5].astype(int)).mean()
        > np.abs(frames[3].astype(int) - frames[4].astype(int)).mean()
    )  # the plane changes halfway


def test_a_file_that_is_no_clip_is_a_clip_error():
    with pytest.raises(ClipError) as error:
        clip_info(b"not a clip at all, just text")
    assert error.value.code == "video_unsupported"
