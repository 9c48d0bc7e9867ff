"""classifier.selectors.frame_runs: a clip's per-frame planes and flags as the timeline's segments."""

from __future__ import annotations

from classifier.selectors import CineSegment, CineTimeline, frame_runs


class TestFrameRuns:
    def test_equal_planes_run_together_and_a_flag_change_starts_a_segment(self):
        labels = ["fetal_brain"] * 3 + ["fetal_femur"] * 2 + ["fetal_femur"] * 2 + ["fetal_brain"]
        flags = [False] * 3 + [False] * 2 + [True] * 2 + [False]

        segments = frame_runs(labels, flags)

        assert segments == (
            CineSegment(start=0, end=3, label="fetal_brain", flagged=False),
            CineSegment(start=3, end=5, label="fetal_femur", flagged=False),
            CineSegment(start=5, end=7, label="fetal_femur", flagged=True),
            CineSegment(start=7, end=8, label="fetal_brain", flagged=False),
        )

    def test_segments_cover_every_frame_once(self):
        labels = ["a", "b", "a", "a", "c", "c", "c", "b"]
        flags = [True, False, False, True, True, True, False, False]

        segments = frame_runs(labels, flags)

        assert [index for s in segments for index in range(s.start, s.end)] == list(range(len(labels)))
        assert all(labels[i] == s.label and flags[i] == s.flagged for s in segments for i in range(s.start, s.end))

    def test_no_frames_no_segments(self):
        assert frame_runs([], []) == ()


class TestPlaneFrames:
    def test_counts_frames_and_flagged_frames_per_plane_in_first_seen_order(self):
        timeline = CineTimeline(
            frame_count=8,
            frame_rate=25.0,
            segments=frame_runs(
                ["b", "b", "a", "a", "a", "b", "b", "b"], [False, True, True, False, False] + [False] * 3
            ),
            key_frames=(),
        )

        assert timeline.plane_frames() == {"b": (5, 1), "a": (3, 1)}
