"""Server-rendered pages: each view calls one selector or service."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import FileResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views import View
from django.views.generic import FormView, TemplateView

from classifier import selectors as classifier_selectors
from classifier import services as classifier_services
from classifier.labels import FetalPlane
from fetalsite.accounts.mixins import StaffPageMixin
from fetalsite.accounts.roles import user_can_review
from fetalsite.errors import ApplicationError
from patients import selectors, services
from patients.apis import ImageOutputSerializer, job_prediction
from patients.forms import PatientForm, ReviewForm, StudyForm, UploadForm, add_service_errors


class HomeView(StaffPageMixin, TemplateView):
    template_name = "patients/worklist.html"

    def get_context_data(self, **kwargs):
        search = self.request.GET.get("q", "").strip()[:100]
        return {
            **super().get_context_data(**kwargs),
            "studies": selectors.study_list(user=self.request.user, filters={"search": search})[:200],
            "search": search,
        }


class PatientCreateView(StaffPageMixin, FormView):
    template_name = "patients/patient_form.html"
    form_class = PatientForm

    def form_valid(self, form):
        try:
            patient = services.patient_create(created_by=self.request.user, **form.cleaned_data)
        except ValidationError as error:
            add_service_errors(form, error)
            return self.form_invalid(form)
        messages.success(self.request, f"Patient {patient.mrn} registered.")
        return redirect("patient-detail", patient_id=patient.id)


class PatientDetailView(StaffPageMixin, TemplateView):
    template_name = "patients/patient_detail.html"

    def get_context_data(self, **kwargs):
        patient = selectors.patient_get(user=self.request.user, patient_id=self.kwargs["patient_id"])
        studies = selectors.study_list(user=self.request.user, filters={"patient": patient.id})
        return {**super().get_context_data(**kwargs), "patient": patient, "studies": studies}


class StudyCreateView(StaffPageMixin, FormView):
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


def _image_cards(user, study_id: int) -> list[dict]:
    images = selectors.image_list(user=user, study_id=study_id)
    return [ImageOutputSerializer(image).data for image in images]


class StudyDetailView(StaffPageMixin, TemplateView):
    template_name = "patients/study_detail.html"

    def get_context_data(self, **kwargs):
        study = selectors.study_get(user=self.request.user, study_id=self.kwargs["study_id"])
        images = list(selectors.image_list(user=self.request.user, study_id=study.id))
        rows = []
        for image in images:
            job = selectors.latest_job(image)
            rows.append({"image": image, "job": job, "prediction": job_prediction(job)})
        return {
            **super().get_context_data(**kwargs),
            "study": study,
            "rows": rows,
            "upload_form": UploadForm(),
            "review_form": ReviewForm(),
            "can_review": user_can_review(self.request.user),
            "planes": FetalPlane.choices,
            "active_model": classifier_selectors.active_model_version(),
        }


class StudyUploadView(StaffPageMixin, View):
    """The plain upload form's target; it answers JSON to scripts and redirects browsers."""

    def post(self, request, study_id: int):
        if not request.user.has_perm("patients.add_ultrasoundimage"):
            raise PermissionDenied
        study = selectors.study_get(user=request.user, study_id=study_id)
        form = UploadForm(request.POST, request.FILES)
        wants_json = request.headers.get("Accept", "").startswith("application/json")
        try:
            if not form.is_valid():
                raise ValidationError({"file": "Choose an image file to upload."})
            upload = form.cleaned_data["file"]
            result = services.image_upload(
                study=study, data=upload.read(), filename=upload.name, uploaded_by=request.user
            )
        except (ValidationError, ApplicationError) as error:
            message = (
                error.message
                if isinstance(error, ApplicationError)
                else " ".join(
                    m
                    for messages_ in getattr(error, "message_dict", {"file": error.messages}).values()
                    for m in messages_
                )
            )
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
    """A small JSON view the study page polls for job progress."""

    def get(self, request, study_id: int):
        study = selectors.study_get(user=request.user, study_id=study_id)
        return JsonResponse({"images": _image_cards(request.user, study.id)})


class PredictionReviewView(StaffPageMixin, View):
    def post(self, request, image_id: int):
        image = selectors.image_get(user=request.user, image_id=image_id)
        if not user_can_review(request.user):
            raise PermissionDenied("Only clinicians can review predictions.")
        prediction = classifier_selectors.prediction_for_image(user=request.user, image_id=image.id)
        form = ReviewForm(request.POST)
        if form.is_valid():
            classifier_services.prediction_review(
                prediction=prediction,
                label=form.cleaned_data["label"],
                comment=form.cleaned_data["comment"],
                reviewed_by=request.user,
            )
            messages.success(request, "Review saved.")
        else:
            messages.error(request, "Choose one of the four planes.")
        return redirect(reverse("study-detail", args=[image.study_id]) + f"#image-{image.id}")


class JobRetryView(StaffPageMixin, View):
    def post(self, request, image_id: int):
        image = selectors.image_get(user=request.user, image_id=image_id)
        job = selectors.latest_job(image)
        try:
            classifier_services.classification_job_retry(job=job)
        except ApplicationError as error:
            messages.error(request, error.message)
        return redirect("study-detail", study_id=image.study_id)


class ImageFileView(StaffPageMixin, View):
    """Image bytes only after the clinic check; never a public media URL."""

    variant = "original"

    def get(self, request, image_id: int):
        image = selectors.image_get(user=request.user, image_id=image_id)
        if self.variant == "heatmap":
            prediction = job_prediction(selectors.latest_job(image))
            if prediction is None or not prediction.heatmap:
                from django.http import Http404

                raise Http404("No heatmap for this image.")
            handle, name, content_type = prediction.heatmap.open("rb"), f"heatmap-{image.id}.png", "image/png"
        else:
            extension = image.file.name.rsplit(".", 1)[-1]
            content_type = {"png": "image/png", "jpg": "image/jpeg", "bmp": "image/bmp", "tif": "image/tiff"}[extension]
            handle, name = image.file.open("rb"), f"image-{image.id}.{extension}"
        response = FileResponse(handle, content_type=content_type, filename=name)
        response["Content-Disposition"] = f'inline; filename="{name}"'
        response["X-Content-Type-Options"] = "nosniff"
        response["Cache-Control"] = "private, max-age=3600"
        return response
