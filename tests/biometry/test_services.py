"""biometry.services: the job a brain plane queues, the measurement saved, reviews, recalibration, flags."""

from __future__ import annotations

import math

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from biometry import services
from biometry.ml.ellipse import Ellipse, head_measurement
from biometry.models import Measurement, MeasurementJob
from biometry.presentation import gestational_summary
from classifier import services as classifier_services
from classifier.services import StudySignedOff
from fetalsite.accounts.roles import Role
from patients.services import image_upload, study_sign_off
from tests.biometry.conftest import SEGMENTER_NAME, brain_image, classify, drawn_head, empty_head, measured, upload
from tests.cine_samples import make_mp4
from tests.factories import StudyFactory, UserFactory

pytestmark = pytest.mark.usefixtures("measuring", "model_version")


class TestMeasurementRequest:
    def test_a_brain_prediction_queues_one_job_sent_after_commit(self, study, django_capture_on_commit_callbacks):
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            image = brain_image(study)

        job = image.measurement_jobs.get()
        assert (job.status, job.model_version, job.attempts) == (MeasurementJob.Status.QUEUED, SEGMENTER_NAME, 0)
        assert job.celery_task_id  # published to the real broker once the prediction committed
        assert len(callbacks) >= 1

    def test_a_second_brain_signal_finds_the_same_job(self, study, clinician):
        image = brain_image(study)
        first = image.measurement_jobs.get()

        classifier_services.image_review(image=image, label="fetal_brain", reviewed_by=clinician)

        assert list(image.measurement_jobs.all()) == [first]
        assert services.measurement_request(image=image) == first

    def test_a_non_brain_prediction_queues_nothing(self, study):
        image = upload(study)
        classify(image, label="fetal_thorax")
        assert not MeasurementJob.objects.exists()

    def test_a_clinician_correcting_a_plane_to_brain_queues_the_job(self, study, clinician):
        image = upload(study)
        classify(image, label="fetal_thorax")
        classifier_services.image_review(image=image, label="fetal_brain", reviewed_by=clinician)
        assert image.measurement_jobs.get().model_version == SEGMENTER_NAME

    def test_a_clip_itself_is_not_measured(self, study, sonographer):
        clip = image_upload(study=study, data=make_mp4(frames=4), filename="sweep.mp4", uploaded_by=sonographer).image
        assert clip.is_cine and services.measurement_request(image=clip) is None  # its key frames are stills

    def test_without_a_readable_model_card_the_prediction_stands_and_no_job_is_made(self, study, settings, tmp_path):
        settings.BIOMETRY_MODEL_CARD = tmp_path / "missing.card.json"
        image = upload(study)
        prediction = classify(image, label="fetal_brain")
        assert prediction.label == "fetal_brain" and not MeasurementJob.objects.exists()


class TestMeasurementSave:
    def test_a_calibrated_head_is_measured_in_pixels_and_millimetres(self, study):
        image = brain_image(study, pixel_size_mm=0.5)
        finding = drawn_head()

        measurement = measured(image, finding)

        expected = head_measurement(finding.fit.ellipse, pixel_size_mm=0.5)
        assert measurement.hc_px == pytest.approx(expected.hc_px)
        assert (measurement.bpd_mm, measurement.ofd_mm) == pytest.approx((expected.bpd_mm, expected.ofd_mm))
        assert measurement.hc_mm == pytest.approx(measurement.hc_px * 0.5)
        assert (measurement.pixel_size_mm, measurement.calibration_source) == (0.5, "upload")
        assert measurement.model_ellipse["angle_deg"] == pytest.approx(math.degrees(finding.fit.ellipse.angle))
        assert measurement.angle_deg == pytest.approx(measurement.model_ellipse["angle_deg"])
        assert measurement.flags == [] and not measurement.needs_review
        assert measurement.job.status == MeasurementJob.Status.SUCCEEDED
        assert (measurement.inference_ms, measurement.total_ms, measurement.runtime) == (12.0, 15.0, "keras")

    def test_without_a_pixel_size_it_stays_in_pixels_and_unflagged(self, study):
        measurement = measured(brain_image(study))
        assert measurement.hc_px > 0 and not measurement.is_calibrated
        assert (measurement.hc_mm, measurement.bpd_mm, measurement.ofd_mm) == (None, None, None)
        assert measurement.flags == []

    def test_an_implausible_hc_is_flagged_for_review(self, study):
        measurement = measured(brain_image(study, pixel_size_mm=5.0))  # ~560 mm
        assert measurement.flags == ["hc_implausible"] and measurement.needs_review

    def test_no_head_found_is_recorded_without_an_ellipse_and_flagged(self, study):
        measurement = measured(brain_image(study), empty_head())
        assert measurement.model_ellipse is None and measurement.semi_major is None and measurement.hc_px is None
        assert measurement.flags == ["empty"] and measurement.needs_review

    def test_a_brain_plane_the_model_was_unsure_of_is_flagged(self, study):
        measurement = measured(brain_image(study, pixel_size_mm=0.5, needs_review=True))
        assert measurement.flags == ["plane_uncertain"] and measurement.needs_review

    def test_saving_twice_keeps_the_first(self, study):
        image = brain_image(study)
        first = measured(image)
        services.measurement_save(job_id=first.job_id, finding=drawn_head(a=25), runtime="keras")
        assert Measurement.objects.get() == first and Measurement.objects.get().semi_major == first.semi_major


class TestPlaneChanges:
    def test_a_plane_corrected_away_from_brain_flags_the_measurement_and_back_unflags_it(self, study, clinician):
        image = brain_image(study, pixel_size_mm=0.5)
        measured(image)

        classifier_services.image_review(image=image, label="fetal_thorax", reviewed_by=clinician)
        measurement = Measurement.objects.get()
        assert measurement.flags == ["not_brain"] and measurement.needs_review
        assert "no longer a brain plane" in gestational_summary(measurement, study)["ga_reason"]

        classifier_services.image_review(image=image, label="fetal_brain", reviewed_by=clinician)
        measurement.refresh_from_db()
        assert measurement.flags == [] and not measurement.needs_review
        assert MeasurementJob.objects.count() == 1
        assert [row.history_change_reason for row in measurement.history.order_by("history_id")] == [
            None,
            "plane: fetal_thorax",
            "plane: fetal_brain",
        ]

    def test_confirming_an_uncertain_brain_plane_clears_its_flag(self, study, clinician):
        image = brain_image(study, needs_review=True)
        measured(image)
        classifier_services.image_review(image=image, label="fetal_brain", reviewed_by=clinician)
        assert Measurement.objects.get().flags == []


class TestMeasurementReview:
    @pytest.fixture
    def measurement(self, study):
        return measured(brain_image(study, pixel_size_mm=0.5))

    def test_accept_keeps_the_models_ellipse(self, measurement, clinician):
        reviewed = services.measurement_review(
            measurement=measurement, reviewed_by=clinician, action="accept", comment=" Good. "
        )
        assert reviewed.review_state == "accepted" and reviewed.review_comment == "Good."
        assert (reviewed.reviewed_by, reviewed.hc_mm) == (clinician, measurement.hc_mm)
        assert reviewed.history.first().history_user == clinician

    def test_adjust_moves_the_axes_and_recomputes_every_figure(self, measurement, clinician):
        ends = [[10, 24], [54, 24], [32, 10], [32, 38]]  # OFD 44 px along x, BPD 28 px

        reviewed = services.measurement_review(
            measurement=measurement, reviewed_by=clinician, action="adjust", axis_ends=ends
        )

        assert reviewed.review_state == "adjusted"
        assert (reviewed.semi_major, reviewed.semi_minor, reviewed.angle_deg) == pytest.approx((22, 14, 0))
        assert (reviewed.ofd_px, reviewed.bpd_px) == pytest.approx((44, 28))
        assert (reviewed.ofd_mm, reviewed.bpd_mm) == pytest.approx((22, 14))
        assert reviewed.hc_mm == pytest.approx(Ellipse(32, 24, 22, 14, 0).perimeter() * 0.5)
        assert reviewed.model_ellipse == measurement.model_ellipse  # the model's answer stays

    def test_redraw_takes_three_points(self, measurement, clinician):
        reviewed = services.measurement_review(
            measurement=measurement, reviewed_by=clinician, action="redraw", points=[[12, 24], [52, 24], [32, 9]]
        )
        assert (reviewed.semi_major, reviewed.semi_minor) == pytest.approx((20, 15))
        assert reviewed.review_state == "adjusted"

    def test_a_rejected_measurement_may_be_reviewed_again_and_history_keeps_each(self, measurement, clinician):
        services.measurement_review(measurement=measurement, reviewed_by=clinician, action="reject")
        services.measurement_review(
            measurement=measurement,
            reviewed_by=clinician,
            action="adjust",
            axis_ends=[[10, 24], [54, 24], [32, 10], [32, 38]],
        )
        reviewed = services.measurement_review(measurement=measurement, reviewed_by=clinician, action="accept")

        assert reviewed.review_state == "adjusted"  # accepting a clinician's ellipse: still a person's ellipse
        rows = list(reviewed.history.order_by("history_id"))
        assert [row.review_state for row in rows] == ["suggested", "rejected", "adjusted", "adjusted"]
        assert [row.history_change_reason for row in rows[1:]] == ["review: reject", "review: adjust", "review: accept"]
        assert rows[0].semi_major == pytest.approx(measurement.semi_major)

    @pytest.mark.parametrize(
        ("kwargs", "field"),
        [
            ({"action": "adjust"}, "axis_ends"),
            ({"action": "adjust", "axis_ends": [[1, 2], [3, 4]]}, "axis_ends"),
            ({"action": "adjust", "axis_ends": [[5, 5], [5, 5], [1, 1], [2, 2]]}, "axis_ends"),
            ({"action": "adjust", "axis_ends": [[0, 0], [1, "x"], [1, 1], [2, 2]]}, "axis_ends"),
            ({"action": "redraw", "points": [[10, 24], [50, 24], [60, 24]]}, "points"),
            ({"action": "redraw", "points": [[500, 500], [600, 500], [550, 520]]}, "points"),
            ({"action": "accept", "points": [[1, 1], [2, 2], [3, 3]]}, "points"),
            ({"action": "adjust", "axis_ends": [[-1e308, 24], [1e308, 24], [32, 10], [32, 38]]}, "axis_ends"),
            ({"action": "adjust", "axis_ends": [[-500, 24], [564, 24], [32, 10], [32, 38]]}, "axis_ends"),
            ({"action": "shrink"}, "action"),
        ],
    )
    def test_bad_input_is_refused_and_changes_nothing(self, measurement, clinician, kwargs, field):
        with pytest.raises(ValidationError) as refused:
            services.measurement_review(measurement=measurement, reviewed_by=clinician, **kwargs)
        assert field in refused.value.message_dict
        assert Measurement.objects.get().review_state == "suggested" and measurement.history.count() == 1

    def test_an_empty_measurement_cannot_be_accepted_but_can_be_redrawn(self, study, clinician):
        measurement = measured(brain_image(study), empty_head())
        with pytest.raises(ValidationError):
            services.measurement_review(measurement=measurement, reviewed_by=clinician, action="accept")
        reviewed = services.measurement_review(
            measurement=measurement, reviewed_by=clinician, action="redraw", points=[[12, 24], [52, 24], [32, 9]]
        )
        assert reviewed.hc_px > 0 and reviewed.flags == ["empty"]  # the model's flag stays: it found nothing

    def test_only_clinicians_of_the_clinic_may_review(self, measurement, sonographer, south):
        other = UserFactory(clinic=south, role=Role.CLINICIAN)
        for user in (sonographer, other):
            with pytest.raises(PermissionDenied):
                services.measurement_review(measurement=measurement, reviewed_by=user, action="accept")
        assert Measurement.objects.get().review_state == "suggested"

    def test_a_signed_off_study_is_read_only(self, measurement, clinician, study):
        study_sign_off(study=study, signed_by=clinician, acknowledged=True)
        with pytest.raises(StudySignedOff):
            services.measurement_review(measurement=measurement, reviewed_by=clinician, action="accept")


class TestRecalibrate:
    def test_a_new_pixel_size_recomputes_the_millimetres_and_their_flag(self, study):
        image = brain_image(study, pixel_size_mm=0.5)
        measurement = measured(image)
        image.pixel_size_mm, image.pixel_size_source = 5.0, "drawn"
        image.save(update_fields=["pixel_size_mm", "pixel_size_source"])

        assert services.measurement_recalibrate(image=image) == 1

        measurement.refresh_from_db()
        assert measurement.hc_mm == pytest.approx(measurement.hc_px * 5.0)
        assert (measurement.calibration_source, measurement.flags) == ("drawn", ["hc_implausible"])
        assert measurement.history.first().history_change_reason == "recalibrated: drawn"

    def test_losing_the_pixel_size_removes_the_millimetres(self, study):
        image = brain_image(study, pixel_size_mm=0.5)
        measured(image)
        image.pixel_size_mm, image.pixel_size_source = None, ""
        image.save(update_fields=["pixel_size_mm", "pixel_size_source"])
        services.measurement_recalibrate(image=image)
        measurement = Measurement.objects.get()
        assert (measurement.hc_mm, measurement.calibration_source, measurement.is_calibrated) == (None, "", False)


class TestGestationalSummary:
    def test_a_calibrated_accepted_hc_dates_the_pregnancy_and_has_a_centile(self, clinician):
        study = StudyFactory(patient__clinic=clinician.clinic, gestational_age_weeks=16, gestational_age_days=0)
        # An ellipse of HC ~115 mm at 1 mm per pixel (the image is 64x48 px): about 16 weeks.
        image = brain_image(study, pixel_size_mm=1.0)
        measurement = measured(image)
        measurement = services.measurement_review(
            measurement=measurement,
            reviewed_by=clinician,
            action="adjust",
            axis_ends=[[10, 24], [54, 24], [32, 10], [32, 38]],
        )

        summary = gestational_summary(measurement, study)

        assert summary["ga_from_hc_days"] is not None and summary["ga_reason"] == ""
        assert summary["study_ga_days"] == 112 and summary["centile_reason"] == ""
        assert 0 < summary["centile"] < 100 and summary["zscore"] is not None

    def test_an_unreviewed_or_uncalibrated_hc_gives_reasons_not_figures(self, study):
        suggested = measured(brain_image(study, pixel_size_mm=0.5))
        uncalibrated = measured(brain_image(study, seed=5))
        assert "not reviewed" in gestational_summary(suggested, study)["ga_reason"]
        summary = gestational_summary(uncalibrated, study)
        assert summary["ga_reason"].startswith("not calibrated") and summary["centile"] is None
