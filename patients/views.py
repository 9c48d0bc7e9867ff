"""Server-rendered pages: each view calls one selector or service.

The study page is rendered here once and then kept current by ``static/js/study.js``, which
uploads with XHR and polls ``StudyImagesJsonView``; every image card, first render or update,
comes from the one template ``patients/_image_card.html``.
"""

from __future__ import annotations

import io

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.urls import reverse
from django.views import View
from django.views.generic import FormView, TemplateView
from PIL import Image

from classifier import selectors as classifier_selectors
from classifier import services as classifier_services
from classifier.labels import FetalPlane
from fetalsite.accounts.mixins import StaffPageMixin
from fetalsite.accounts.roles import user_can_review
from fetalsite.core.cache_headers import IMAGE_CACHE_CONTROL
from fetalsite.core.errors import ApplicationError
from fetalsite.core.shown import note_patients
from patients import selectors, services
from patients.apis import ImageOutputSerializer
from patients.forms import (
    PatientForm,
    ReviewForm,
    StudyForm,
    UploadForm,
    WorklistFilterForm,
    add_service_errors,
)

WORKLIST_PAGE_SIZE = 25


def _wants_json(request) -> bool:
    return request.headers.get("Accept", "").startswith("application/json")


def _error_text(error: ValidationError | ApplicationError) -> str:
    if isinstance(error, ApplicationError):
        return error.message
    if hasattr(error, "error_dict"):
        return " ".join(message for messages_ in error.message_dict.values() for message in messages_)
    return " ".join(error.messages)


class HomeView(StaffPageMixin, TemplateView):
    """The worklist: the clinic's studies, newest first, searchable, filterable and paginated."""

    template_name = "patients/worklist.html"

    def get_context_data(self, **kwargs):
        filter_form = WorklistFilterForm(self.request.GET)
        filters = filter_form.filters()
        studies = selectors.worklist_study_list(user=self.request.user, filters=filters)
        page = Paginator(studies, WORKLIST_PAGE_SIZE).get_page(self.request.GET.get("page"))
        query = self.request.GET.copy()
        query.pop("page", None)
        search = filters.get("search", "")
        patients = list(selectors.patient_list(user=self.request.user, search=search)[:10]) if search else []
        # The access log records every patient this page shows: the studies' and the search's.
        note_patients(self.request, [study.patient_id for study in page.object_list] + [p.id for p in patients])
        return {
            **super().get_context_data(**kwargs),
            "filter_form": filter_form,
            "page": page,
            "studies": page.object_list,
            "query": query.urlencode(),
            "search": search,
            "patients": patients,
        }


class PatientCreateView(StaffPageMixin, FormView):
    page_permission = "patients.add_patient"
    template_name = "patients/patient_form.html"
    form_class = PatientForm

    def form_valid(self, form):
        try:
            patient = services.patient_create(created_by=self.request.user, **form.cleaned_data)
        except ValidationError as error:
            add_service_errors(form, error, non_field_errors_to="mrn")
            return self.form_invalid(form)
        messages.success(self.request, f"Patient {patient.mrn} registered.")
        return redirect("patient-detail", patient_id=patient.id)


class PatientUpdateView(StaffPageMixin, FormView):
    template_name = "patients/patient_form.html"
    form_class = PatientForm
    page_permission = "patients.change_patient"

    def get_patient(self):
        if not hasattr(self, "_patient"):
            self._patient = selectors.patient_get(user=self.request.user, patient_id=self.kwargs["patient_id"])
        return self._patient

    def get_initial(self):
        patient = self.get_patient()
        return {
            "mrn": patient.mrn,
            "given_name": patient.given_name,
            "family_name": patient.family_name,
            "birth_date": patient.birth_date,
        }

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "patient": self.get_patient()}

    def form_valid(self, form):
        patient = self.get_patient()
        try:
            services.patient_update(patient=patient, updated_by=self.request.user, **form.cleaned_data)
        except ValidationError as error:
            add_service_errors(form, error, non_field_errors_to="mrn")
            return self.form_invalid(form)
        messages.success(self.request, f"Patient {patient.mrn} saved.")
        return redirect("patient-detail", patient_id=patient.id)


class PatientDetailView(StaffPageMixin, TemplateView):
    template_name = "patients/patient_detail.html"

    def get_context_data(self, **kwargs):
        patient = selectors.patient_get(user=self.request.user, patient_id=self.kwargs["patient_id"])
        studies = selectors.worklist_study_list(user=self.request.user, filters={"patient": patient.id})
        return {**super().get_context_data(**kwargs), "patient": patient, "studies": studies}


class StudyCreateView(StaffPageMixin, FormView):
    page_permission = "patients.add_study"
    template_name = "patients/study_form.html"
    form_class = StudyForm

    def get_patient(self):
        return selectors.patient_get(user=self.request.user, patient_id=self.kwargs["patient_id"])

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "patient": self.get_patient()}

    def form_valid(self, form):
        try:
            study = services.study_create(patient=self.get_patient(), created_by=self.request.user, **form.cleaned_data)
        except ValidationError as error:
            add_service_errors(form, error)
            return self.form_invalid(form)
        return redirect("study-detail", study_id=study.id)


# ---- The study page and its image cards ---------------------------------------------------------


def _card_context(image, *, can_review: bool) -> dict:
    job = classifier_selectors.image_latest_job(image)
    prediction = classifier_selectors.job_prediction(job)
    probabilities = []
    if prediction is not None:
        for plane in FetalPlane:
            value = float(prediction.probabilities.get(plane.value, 0.0))
            probabilities.append(
                {
                    "label": plane.value,
                    "name": plane.label,
                    "percent": round(value * 100, 1),
                    "is_top": plane == prediction.label,
                }
            )
    return {
        "image": image,
        "job": job,
        "prediction": prediction,
        "probabilities": probabilities,
        "can_review": can_review,
        "planes": FetalPlane.choices,
        "version": _card_version(job, prediction),
    }


def _card_version(job, prediction) -> str:
    """Changes whenever the card would look different, so the page replaces only changed cards."""
    if job is None:
        return "none"
    reviewed = prediction.reviewed_at.isoformat() if prediction and prediction.reviewed_at else ""
    return f"{job.id}:{job.status}:{job.attempts}:{prediction.id if prediction else ''}:{reviewed}"


def _render_card(request, image, *, can_review: bool) -> str:
    return render_to_string("patients/_image_card.html", _card_context(image, can_review=can_review), request=request)


def _render_summary(request, images) -> str:
    return render_to_string(
        "patients/_plane_summary.html", {"coverage": selectors.plane_coverage(images)}, request=request
    )


class StudyDetailView(StaffPageMixin, TemplateView):
    template_name = "patients/study_detail.html"

    def get_context_data(self, **kwargs):
        study = selectors.study_get(user=self.request.user, study_id=self.kwargs["study_id"])
        images = list(selectors.image_list(user=self.request.user, study_id=study.id))
        can_review = user_can_review(self.request.user)
        return {
            **super().get_context_data(**kwargs),
            "study": study,
            "cards": [_card_context(image, can_review=can_review) for image in images],
            "coverage": selectors.plane_coverage(images),
            "upload_form": UploadForm(),
            "can_upload": self.request.user.has_perm("patients.add_ultrasoundimage"),
            "active_model": classifier_selectors.active_model_version(),
            "upload_max_bytes": settings.UPLOAD_MAX_BYTES,
            "upload_max_mb": settings.UPLOAD_MAX_BYTES // (1024 * 1024),
        }


class StudyCompleteView(StaffPageMixin, View):
    """Close a study: no more uploads; it leaves the worklist's open studies."""

    def post(self, request, study_id: int):
        if not request.user.has_perm("patients.change_study"):
            raise PermissionDenied
        study = selectors.study_get(user=request.user, study_id=study_id)
        services.study_complete(study=study, completed_by=request.user)
        messages.success(request, "Study marked completed.")
        return redirect("study-detail", study_id=study.id)


class StudyUploadView(StaffPageMixin, View):
    """The upload target: JSON for the page's script (one file per request), a redirect for plain forms."""

    def post(self, request, study_id: int):
        if not request.user.has_perm("patients.add_ultrasoundimage"):
            raise PermissionDenied
        study = selectors.study_get(user=request.user, study_id=study_id)
        form = UploadForm(request.POST, request.FILES)
        wants_json = _wants_json(request)
        try:
            if not form.is_valid():
                raise ValidationError({"file": "Choose an image file to upload."})
            upload = form.cleaned_data["file"]
            result = services.image_upload(
                study=study, data=upload.read(), filename=upload.name, uploaded_by=request.user
            )
        except (ValidationError, ApplicationError) as error:
            message = _error_text(error)
            if wants_json:
                return JsonResponse({"detail": message}, status=getattr(error, "http_status", 400))
            messages.error(request, f"Upload refused: {message}")
            return redirect("study-detail", study_id=study.id)
        if wants_json:
            image = selectors.image_get(user=request.user, image_id=result.image.id)
            return JsonResponse(ImageOutputSerializer(image).data, status=202 if result.created else 200)
        if not result.created:
            messages.info(request, "This image was already in the study.")
        return redirect("study-detail", study_id=study.id)


class StudyImagesJsonView(StaffPageMixin, View):
    """What the study page polls: every image as the API shows it, plus its card's HTML and version."""

    def get(self, request, study_id: int):
        study = selectors.study_get(user=request.user, study_id=study_id)
        images = list(selectors.image_list(user=request.user, study_id=study.id))
        can_review = user_can_review(request.user)
        payload = []
        for image in images:
            context = _card_context(image, can_review=can_review)
            payload.append(
                {
                    **ImageOutputSerializer(image).data,
                    "version": context["version"],
                    "html": render_to_string("patients/_image_card.html", context, request=request),
                }
            )
        return JsonResponse({"images": payload, "summary_html": _render_summary(request, images)})


class PredictionReviewView(StaffPageMixin, View):
    """A clinician confirms or corrects a label; the model's own answer stays on the prediction."""

    def post(self, request, image_id: int):
        image = selectors.image_get(user=request.user, image_id=image_id)
        if not user_can_review(request.user):
            raise PermissionDenied("Only clinicians can review predictions.")
        form = ReviewForm(request.POST)
        error = None
        if form.is_valid():
            try:
                classifier_services.image_review(
                    image=image,
                    label=form.cleaned_data["label"],
                    comment=form.cleaned_data["comment"],
                    reviewed_by=request.user,
                )
            except (ValidationError, ApplicationError) as invalid:
                error = _error_text(invalid)
        else:
            error = "Choose one of the four planes; a comment may have at most 2000 characters."
        if _wants_json(request):
            if error:
                return JsonResponse({"detail": error}, status=400)
            image = selectors.image_get(user=request.user, image_id=image.id)
            return JsonResponse({"html": _render_card(request, image, can_review=True)})
        if error:
            messages.error(request, error)
        else:
            messages.success(request, "Review saved.")
        return redirect(reverse("study-detail", args=[image.study_id]) + f"#image-{image.id}")


class JobRetryView(StaffPageMixin, View):
    def post(self, request, image_id: int):
        image = selectors.image_get(user=request.user, image_id=image_id)
        job = classifier_selectors.image_latest_job(image)
        if job is None:
            raise Http404("This image has no job.")
        try:
            classifier_services.classification_job_retry(job=job, retried_by=request.user)
        except ApplicationError as error:
            if _wants_json(request):
                return JsonResponse({"detail": error.message}, status=error.http_status)
            messages.error(request, error.message)
        if _wants_json(request):
            image = selectors.image_get(user=request.user, image_id=image.id)
            return JsonResponse({"html": _render_card(request, image, can_review=user_can_review(request.user))})
        return redirect("study-detail", study_id=image.study_id)


class ImageHistoryView(StaffPageMixin, TemplateView):
    """Upload, job runs, prediction and reviews of one image; ``?fragment=1`` gives just the list."""

    def get_template_names(self):
        if self.request.GET.get("fragment"):
            return ["patients/_image_history.html"]
        return ["patients/image_history.html"]

    def get_context_data(self, **kwargs):
        image = selectors.image_get(user=self.request.user, image_id=self.kwargs["image_id"])
        events = selectors.image_history(user=self.request.user, image_id=image.id)
        return {**super().get_context_data(**kwargs), "image": image, "events": events}


class ImageFileView(StaffPageMixin, View):
    """Image bytes only after the clinic check; never a public media URL."""

    variant = "original"

    def get(self, request, image_id: int):
        image = selectors.image_get(user=request.user, image_id=image_id)
        if self.variant == "preview" and image.format not in BROWSER_FORMATS:
            return _png_response(image)
        if self.variant == "heatmap":
            prediction = classifier_selectors.image_latest_prediction(image)
            if prediction is None or not prediction.heatmap:
                raise Http404("No heatmap for this image.")
            handle, name, content_type = prediction.heatmap.open("rb"), f"heatmap-{image.id}.png", "image/png"
        else:
            extension = image.file.name.rsplit(".", 1)[-1]
            content_type = {"png": "image/png", "jpg": "image/jpeg", "bmp": "image/bmp", "tif": "image/tiff"}[extension]
            handle, name = image.file.open("rb"), f"image-{image.id}.{extension}"
        response = FileResponse(handle, content_type=content_type, filename=name)
        response["Content-Disposition"] = f'inline; filename="{name}"'
        response["X-Content-Type-Options"] = "nosniff"
        response["Cache-Control"] = IMAGE_CACHE_CONTROL
        return response


# Formats every browser shows; TIFF is shown as a PNG made on the fly.
BROWSER_FORMATS = {"PNG", "JPEG", "BMP"}


def _png_response(image) -> HttpResponse:
    with image.file.open("rb") as handle, Image.open(handle) as decoded:
        buffer = io.BytesIO()
        decoded.convert("RGB" if decoded.mode not in ("L", "RGB", "RGBA") else decoded.mode).save(buffer, "PNG")
    response = HttpResponse(buffer.getvalue(), content_type="image/png")
    response["Content-Disposition"] = f'inline; filename="image-{image.id}.png"'
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = IMAGE_CACHE_CONTROL
    return response
