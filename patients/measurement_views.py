"""The study page's head measurement actions (issue 21): review a measurement (accept, adjust, redraw, reject),
calibrate an image by a line drawn on it, and a measurement's history. Each calls one service or selector; the
answer is the image's card (``patients.views``' page-action answer), so the page's script swaps it in and a plain
form post gets a redirect back to the study page."""

from __future__ import annotations

import math

from django import forms
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.views import View
from django.views.generic import TemplateView

from biometry import selectors as biometry_selectors
from biometry import services as biometry_services
from fetalsite.accounts.mixins import StaffPageMixin
from patients import measurement_cards, selectors, services
from patients.forms import ImageCalibrationForm
from patients.page_actions import PageActionMixin
from patients.views import _card_action_answer

Point = tuple[float, float]


def parse_points(text: str) -> list[Point]:
    """ "x,y x,y ..." (image pixels), as the page's editor posts them."""
    points = []
    for pair in text.split():
        x, sep, y = pair.partition(",")
        try:
            point = (float(x), float(y))
        except ValueError:
            raise ValidationError(f"“{pair}” is not a point (x,y in image pixels).", code="invalid") from None
        if not sep or not all(math.isfinite(value) for value in point):
            raise ValidationError(f"“{pair}” is not a point (x,y in image pixels).", code="invalid")
        points.append(point)
    return points


class MeasurementReviewForm(forms.Form):
    """What the card's review controls post: the review's action, and for adjust the four axis ends (OFD, OFD,
    BPD, BPD) or for redraw three points (two ends of one axis, then a point on the curve). The service checks
    that they make an ellipse on the image and says what is wrong if not."""

    # Not "action": a form control of that name would hide the form's own action (its URL) from scripts.
    review_action = forms.ChoiceField(choices=[(action, action) for action in biometry_services.REVIEW_ACTIONS])
    points = forms.CharField(required=False, max_length=500)
    comment = forms.CharField(required=False, max_length=2000)

    def clean(self):
        data = super().clean()
        if data.get("review_action") in ("adjust", "redraw"):
            data["parsed_points"] = parse_points(data.get("points", ""))
        return data

    def review(self) -> dict:
        """The service's keyword arguments."""
        data = self.cleaned_data
        action = data["review_action"]
        review = {"action": action, "comment": data.get("comment", "")}
        if action == "adjust":
            review["axis_ends"] = data["parsed_points"]
        elif action == "redraw":
            review["points"] = data["parsed_points"]
        return review


def _study_url(image) -> str:
    return reverse("study-detail", args=[image.study_id]) + f"#image-{image.id}"


class MeasurementReviewView(PageActionMixin, View):
    """A clinician accepts, adjusts, redraws or rejects a head measurement; the model's ellipse stays in it."""

    def post(self, request, measurement_id: int):
        measurement = biometry_selectors.measurement_get(user=request.user, measurement_id=measurement_id)
        image = measurement.image
        self.return_url = _study_url(image)
        if not request.user.has_perm(measurement_cards.REVIEW_PERMISSION):
            raise PermissionDenied("Only clinicians can review head measurements.")
        form = MeasurementReviewForm(request.POST)
        if not form.is_valid():
            raise ValidationError(form.errors.as_data())
        biometry_services.measurement_review(measurement=measurement, reviewed_by=request.user, **form.review())
        return _card_action_answer(request, image, return_url=self.return_url, message="Measurement saved.")


class ImageCalibrateView(PageActionMixin, View):
    """The pixel size from a line of known length drawn on the image; its measurements get millimetres."""

    def post(self, request, image_id: int):
        image = selectors.image_get(user=request.user, image_id=image_id)
        self.return_url = _study_url(image)
        form = ImageCalibrationForm(request.POST)
        if not form.is_valid():
            raise ValidationError(form.errors.as_data())
        services.image_calibrate(image=image, calibrated_by=request.user, **form.calibration())
        return _card_action_answer(request, image, return_url=self.return_url, message="Pixel size saved.")


class MeasurementHistoryView(StaffPageMixin, TemplateView):
    """The model's ellipse and every change to it, who and when; ``?fragment=1`` gives just the list
    (the card's disclosure loads it when opened)."""

    def get_template_names(self):
        if self.request.GET.get("fragment"):
            return ["patients/_measurement_history.html"]
        return ["patients/measurement_history.html"]

    def get_context_data(self, **kwargs):
        user, measurement_id = self.request.user, kwargs["measurement_id"]
        measurement = biometry_selectors.measurement_get(user=user, measurement_id=measurement_id)
        events = measurement_cards.measurement_history(measurement)
        return {**super().get_context_data(**kwargs), "measurement": measurement, "events": events}
