"""Server-rendered pages: each view calls one selector or service.

The study page is rendered here once and then kept current by ``static/js/study.js``, which
uploads with XHR and polls ``StudyImagesView``; every image card, first render or update,
comes from the one template ``patients/_image_card.html``. Page actions answer HTML only:
a partial for the script, a redirect for a plain form (``patients.page_actions``).
"""

from __future__ import annotations

import hashlib
import io
from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import get_conditional_response, patch_vary_headers
from django.utils.http import quote_etag
from django.views import View
from django.views.generic import FormView, TemplateView
from PIL import Image

from biometry.growth_points import patient_growth_chart, study_growth_chart
from classifier import selectors as classifier_selectors
from classifier import services as classifier_services
from classifier.labels import FetalPlane, plane_display
from classifier.models import Prediction
from fetalsite.accounts.mixins import StaffPageMixin
from fetalsite.accounts.roles import user_can_review
from fetalsite.core.cache_headers import IMAGE_CACHE_CONTROL
from fetalsite.core.ranges import ranged_file_response
from fetalsite.core.shown import note_patients
from patients import measurement_cards, report, selectors, services
from patients.forms import (
    ExcludeForm,
    PatientForm,
    ReopenForm,
    ReviewForm,
    SignOffForm,
    StudyEditForm,
    StudyForm,
    UploadForm,
    WorklistFilterForm,
    add_mrn_taken_error,
    add_service_errors,
)
from patients.imaging import media_type_of
from patients.models import Study, UltrasoundImage
from patients.page_actions import PARTIAL_HEADER, PageActionMixin, is_partial_request, partial_response

WORKLIST_PAGE_SIZE = 25


class HomeView(StaffPageMixin, TemplateView):
    """The worklist: the clinic's studies, newest first, searchable, filterable by date, sortable by any column
    and paginated; every filter lives in the query string, so a view of the list is a link."""

    template_name = "patients/worklist.html"

    def get_context_data(self, **kwargs):
        filter_form = WorklistFilterForm(self.request.GET)
        filters = filter_form.filters()
        studies = selectors.worklist_study_list(user=self.request.user, filters=filters)
        page = Paginator(studies, WORKLIST_PAGE_SIZE).get_page(self.request.GET.get("page"))
        _attach_operators(page.object_list)
        query = self.request.GET.copy()
        query.pop("page", None)
        search = filters.get("search", "")
        patients = list(selectors.patient_list(user=self.request.user, search=search)[:10]) if search else []
        # The access log records every patient this page shows: the studies' and the search's.
        note_patients(self.request, [study.patient_id for study in page.object_list] + [p.id for p in patients])
        return {
            **super().get_context_data(**kwargs),
            "filter_form": filter_form,
            "problems": filter_form.problems(),
            "page": page,
            "studies": page.object_list,
            "query": query.urlencode(),
            "columns": _worklist_columns(query, filters["sort"]),
            "shortcuts": _date_shortcuts(query),
            "search": search,
            "patients": patients,
        }


# The worklist's columns, left to right: (sort name, heading, numeric). The patient page shows the same rows
# without the first two and without sort links.
WORKLIST_COLUMNS = (
    ("patient", "Patient", False),
    ("mrn", "MRN", False),
    ("exam_date", "Exam date", False),
    ("ga", "GA", False),
    ("operator", "Operator", False),
    ("images", "Images", True),
    ("classified", "Classified", True),
    ("awaiting", "Awaiting review", True),
    ("unreviewed", "Unreviewed", True),
    ("pending", "Pending", True),
    ("status", "Status", False),
)


def _worklist_columns(query, sort: str) -> list[dict]:
    """Each column's heading with its sort link (the other filters kept, back to page 1) and its aria-sort:
    a column sorts ascending first, and its link flips the direction while it is the sorted one."""
    current, descending = sort.removeprefix("-"), sort.startswith("-")
    columns = []
    for name, heading, numeric in WORKLIST_COLUMNS:
        is_sorted = name == current
        link = query.copy()
        link["sort"] = name if not is_sorted or descending else f"-{name}"
        aria = ("descending" if descending else "ascending") if is_sorted else None
        columns.append(
            {"name": name, "heading": heading, "numeric": numeric, "url": f"?{link.urlencode()}", "aria_sort": aria}
        )
    return columns


def _date_shortcuts(query) -> list[dict]:
    """ "Today" and "This week" (Monday to Sunday) as links that set the exam date range, other filters kept."""
    today = timezone.localdate()
    monday = today - timedelta(days=today.weekday())
    shortcuts = []
    for label, start, end in (("Today", today, today), ("This week", monday, monday + timedelta(days=6))):
        link = query.copy()
        link["date_from"], link["date_to"] = start.isoformat(), end.isoformat()
        active = query.get("date_from") == link["date_from"] and query.get("date_to") == link["date_to"]
        shortcuts.append({"label": label, "url": f"?{link.urlencode()}", "active": active})
    return shortcuts


def _attach_operators(studies) -> None:
    """Each study's ``operators``: who uploaded its images (one query for the page)."""
    operators = selectors.study_operators(studies)
    for study in studies:
        study.operators = operators[study.id]


class PatientCreateView(StaffPageMixin, FormView):
    page_permission = "patients.add_patient"
    template_name = "patients/patient_form.html"
    form_class = PatientForm

    def form_valid(self, form):
        try:
            patient = services.patient_create(created_by=self.request.user, **form.cleaned_data)
        except services.MrnExists as taken:
            add_mrn_taken_error(form, taken)
            return self.form_invalid(form)
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
        except services.MrnExists as taken:
            add_mrn_taken_error(form, taken)
            return self.form_invalid(form)
        except ValidationError as error:
            add_service_errors(form, error, non_field_errors_to="mrn")
            return self.form_invalid(form)
        messages.success(self.request, f"Patient {patient.mrn} saved.")
        return redirect("patient-detail", patient_id=patient.id)


class PatientDetailView(StaffPageMixin, TemplateView):
    template_name = "patients/patient_detail.html"

    def get_context_data(self, **kwargs):
        patient = selectors.patient_get(user=self.request.user, patient_id=self.kwargs["patient_id"])
        studies = list(selectors.worklist_study_list(user=self.request.user, filters={"patient": patient.id}))
        _attach_operators(studies)
        columns = [{"name": name, "heading": text, "numeric": numeric} for name, text, numeric in WORKLIST_COLUMNS]
        return {
            **super().get_context_data(**kwargs),
            "patient": patient,
            "studies": studies,
            "columns": columns,
            "growth_chart": patient_growth_chart(user=self.request.user, patient_id=patient.id),
        }


class StudyCreateView(StaffPageMixin, FormView):
    page_permission = "patients.add_study"
    template_name = "patients/study_form.html"
    form_class = StudyForm

    def get_patient(self):
        return selectors.patient_get(user=self.request.user, patient_id=self.kwargs["patient_id"])

    def get_initial(self):
        return {"exam_date": timezone.localdate()}  # most studies are opened on the day of the exam

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


def _card_context(image, *, can_review: bool, user) -> dict:
    job = classifier_selectors.image_latest_job(image)
    prediction = classifier_selectors.job_prediction(job)
    timeline = classifier_selectors.cine_timeline(image) if image.is_cine else None
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
        # A signed-off study is read-only: its cards show no review, exclude or retry controls.
        "can_review": can_review and image.study.status == Study.Status.OPEN,
        "planes": FetalPlane.choices,
        "cine": _cine_context(image, timeline) if image.is_cine else None,
        "measure": measurement_cards.measure_context(image, user=user),
        "version": _full_version(image, job, prediction, timeline),
        "review": {
            "state": selectors.image_review_state(image),
            "not_plane_reasons": Prediction.NotPlaneReason.choices,
            "exclusion_reasons": UltrasoundImage.ExclusionReason.choices,
        },
    }


def _full_version(image, job, prediction, timeline) -> str:
    """The card's ``data-version``: what it shows from its latest job and prediction, its clip's key frames and
    whether it is excluded, and its head measurement."""
    version = _card_version(job, prediction) + _timeline_version(timeline) + _exclusion_version(image)
    return version + measurement_cards.measurement_version(image)


def _image_version(image) -> str:
    """The card's version without building the card (from the selector's prefetch: no query)."""
    job = classifier_selectors.image_latest_job(image)
    timeline = classifier_selectors.cine_timeline(image) if image.is_cine else None
    return _full_version(image, job, classifier_selectors.job_prediction(job), timeline)


# ---- The study page's poll: only the cards that changed since the page's last answer --------------
# Each answer names the state it showed (X-Poll-State): the page's own (study status, whether the person may review)
# and a short digest of each card's version; its ETag is a hash of that. The script sends both back: a matching
# If-None-Match is a 304 with no body; else ``?since=<state>`` gets only the cards whose digest differs, and the
# plane summary. (A study too long for the state to fit in a URL gets every card when anything changed.)
POLL_STATE_HEADER = "X-Poll-State"


def _version_digest(version: str) -> str:
    return hashlib.blake2b(version.encode(), digest_size=5).hexdigest()


def _poll_token(*, study: Study, can_review: bool, versions: dict[int, str]) -> str:
    cards = ".".join(f"{image_id}-{_version_digest(version)}" for image_id, version in versions.items())
    return f"{study.status}-{int(can_review)}.{cards}"


def _poll_etag(token: str) -> str:
    return quote_etag(hashlib.blake2b(token.encode(), digest_size=8).hexdigest())


def _known_digests(token: str, *, current: str) -> dict[int, str]:
    """The card digests a poll's ``since`` token names, or none (send every card) when it is malformed or the page's
    own state changed since (a sign-off changes every card's controls)."""
    head, _, cards = token.partition(".")
    if head != current.partition(".")[0]:
        return {}
    known = {}
    for card in filter(None, cards.split(".")):
        image_id, _, digest = card.partition("-")
        if image_id.isdigit():
            known[int(image_id)] = digest
    return known


def _exclusion_version(image) -> str:
    return f":x{image.excluded_at.isoformat()}" if image.excluded_at else ""


def _card_version(job, prediction) -> str:
    """Changes whenever the card would look different, so the page replaces only changed cards."""
    if job is None:
        return "none"
    reviewed = prediction.reviewed_at.isoformat() if prediction and prediction.reviewed_at else ""
    return f"{job.id}:{job.status}:{job.attempts}:{prediction.id if prediction else ''}:{reviewed}"


def _timeline_version(timeline) -> str:
    """A clip's card changes too when the stills of its key frames are stored (their links appear)."""
    if timeline is None:
        return ""
    return ":k" + ",".join(f"{key.frame_index}={key.image_id or ''}" for key in timeline.key_frames)


def _clip_time(seconds: float) -> str:
    """0:02.28: minutes, seconds and hundredths, as a frame's time in the clip."""
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}:{rest:05.2f}"


def _cine_context(image, timeline) -> dict:
    """What the clip's player and timeline strip show. Positions are percentages of the strip, formatted here
    (SVG x/width attributes, and data-pct for the script): the Content-Security-Policy allows no inline styles."""
    frames = (timeline.frame_count if timeline else image.frame_count) or 0
    fps = image.frame_rate

    def percent(frame: float) -> str:
        return f"{100 * frame / frames:.4f}" if frames else "0"

    context = {
        "frame_count": frames,
        "fps": f"{fps:g}" if fps else "",
        "duration": _clip_time(image.duration_s) if image.duration_s else "",
        "timeline": timeline,
    }
    if timeline is None:
        return context
    segments = [
        {
            "start": s.start,
            "end": s.end,
            "last": s.end - 1,
            "label": s.label,
            "name": plane_display(s.label),
            "flagged": s.flagged,
            "x": percent(s.start),
            "width": percent(s.end - s.start),
        }
        for s in timeline.segments
    ]
    key_frames = [
        {
            "frame": key.frame_index,
            "label": key.label,
            "name": plane_display(key.label),
            "letter": plane_display(key.label).split()[-1][:1].upper(),
            "pct": percent(key.frame_index + 0.5),
            "time": _clip_time(key.frame_index / fps) if fps else "",
            "percent": round(key.confidence * 100),
            "image_id": key.image_id,
        }
        for key in timeline.key_frames
    ]
    planes = [
        {"label": label, "name": plane_display(label), "frames": count, "flagged": flagged}
        for label, (count, flagged) in timeline.plane_frames().items()
    ]
    flagged = sum(plane["flagged"] for plane in planes)
    return {**context, "segments": segments, "key_frames": key_frames, "planes": planes, "flagged": flagged}


def _card_response(request, image_id: int, *, status: int = 200) -> HttpResponse:
    """The image's card as it is now, for the script to swap in."""
    image = selectors.image_get(user=request.user, image_id=image_id)
    context = _card_context(image, can_review=user_can_review(request.user), user=request.user)
    return partial_response(request, "patients/_image_card.html", context, status=status)


def _card_action_answer(request, image, *, return_url: str, message: str = "") -> HttpResponse:
    """After an action on one image's card: the card itself for the page's script, else back to the study page."""
    if is_partial_request(request):
        return _card_response(request, image.id)
    if message:
        messages.success(request, message)
    return redirect(return_url)


class StudyDetailView(StaffPageMixin, TemplateView):
    template_name = "patients/study_detail.html"

    def get_context_data(self, **kwargs):
        study = selectors.study_get(user=self.request.user, study_id=self.kwargs["study_id"])
        images = list(selectors.image_list(user=self.request.user, study_id=study.id))
        can_review = user_can_review(self.request.user)
        cards = [_card_context(image, can_review=can_review, user=self.request.user) for image in images]
        versions = {card["image"].id: card["version"] for card in cards}
        token = _poll_token(study=study, can_review=can_review, versions=versions)
        return {
            **super().get_context_data(**kwargs),
            "study": study,
            "poll_token": token,
            "poll_etag": _poll_etag(token),
            "can_sign_off": can_review,
            "reopen_form": ReopenForm() if can_review and study.status != Study.Status.OPEN else None,
            "cards": cards,
            "summary": selectors.plane_summary(images),
            "growth_chart": study_growth_chart(user=self.request.user, study=study),
            "upload_form": UploadForm(),
            "can_upload": self.request.user.has_perm("patients.add_ultrasoundimage"),
            "active_model": classifier_selectors.active_model_version(),
            "upload_max_bytes": settings.UPLOAD_MAX_BYTES,
            "upload_max_mb": settings.UPLOAD_MAX_BYTES // (1024 * 1024),
        }


class StudyEditView(StaffPageMixin, FormView):
    """Correct a study's exam date, gestational age and notes while it is open (the history keeps each change)."""

    page_permission = "patients.change_study"
    template_name = "patients/study_edit.html"
    form_class = StudyEditForm

    def get_study(self):
        if not hasattr(self, "_study"):
            self._study = selectors.study_get(user=self.request.user, study_id=self.kwargs["study_id"])
        return self._study

    def get(self, request, *args, **kwargs):
        return self._refuse_signed() or super().get(request, *args, **kwargs)

    def post(self, request, *args, **kwargs):
        return self._refuse_signed() or super().post(request, *args, **kwargs)

    def _refuse_signed(self):
        """A signed-off study has no edit form: back to its page, saying why (the service refuses it too)."""
        study = self.get_study()
        if study.status == Study.Status.OPEN:
            return None
        messages.error(self.request, "This study is signed off and read-only; a clinician can reopen it.")
        return redirect("study-detail", study_id=study.id)

    def get_initial(self):
        study = self.get_study()
        return {field: getattr(study, field) for field in StudyEditForm.base_fields}

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "study": self.get_study()}

    def form_valid(self, form):
        study = self.get_study()
        changes = {name: value for name, value in form.cleaned_data.items() if value != getattr(study, name)}
        try:
            services.study_update(study=study, updated_by=self.request.user, **changes)
        except ValidationError as error:
            add_service_errors(form, error)
            return self.form_invalid(form)
        except services.StudySignedOff as refused:
            messages.error(self.request, refused.message)
            return redirect("study-detail", study_id=study.id)
        messages.success(self.request, "Study saved." if changes else "Nothing to change.")
        return redirect("study-detail", study_id=study.id)


class ClinicianPageMixin(StaffPageMixin):
    """Sign-off and reopening are a clinician's: other roles get a 403 before any form (the service decides),
    once the study is found, so another clinic's study is a 404 like a missing one."""

    def dispatch(self, request, *args, **kwargs):
        handles = hasattr(self, request.method.lower())  # a method the view lacks is its 405, for everyone
        if handles and request.user.is_authenticated:
            selectors.study_get(user=request.user, study_id=kwargs["study_id"])
        if handles and request.user.is_authenticated and not user_can_review(request.user):
            raise PermissionDenied("Only clinicians can sign studies off or reopen them.")
        return super().dispatch(request, *args, **kwargs)


class StudySignOffView(ClinicianPageMixin, TemplateView):
    """The confirmation before sign-off: what is still unreviewed, unclassified or missing, each image linked to
    its card; with any, the clinician ticks "I have seen these open items" (the service holds the same rule)."""

    template_name = "patients/study_sign_off.html"

    def get_study(self):
        return selectors.study_get(user=self.request.user, study_id=self.kwargs["study_id"])

    def get(self, request, *args, **kwargs):
        study = self.get_study()
        if study.status != Study.Status.OPEN:
            messages.info(request, "This study is already signed off.")
            return redirect("study-detail", study_id=study.id)
        return self.render_to_response(self._context(study, SignOffForm()))

    def post(self, request, *args, **kwargs):
        study = self.get_study()
        form = SignOffForm(request.POST)
        form.is_valid()  # one optional checkbox: always valid
        try:
            services.study_sign_off(
                study=study, signed_by=request.user, acknowledged=form.cleaned_data.get("acknowledged", False)
            )
        except services.StudyHasOpenItems:
            # Open items appeared since the page was shown, or the box was not ticked: show them again.
            form.add_error("acknowledged", "Tick this box to sign the study off with these items open.")
            return self.render_to_response(self._context(study, form), status=409)
        messages.success(request, "Study signed off.")
        return redirect("study-detail", study_id=study.id)

    def _context(self, study, form) -> dict:
        summary = selectors.study_plane_summary(study=study)
        return {**self.get_context_data(), "study": study, "summary": summary, "form": form}


class StudyReopenView(ClinicianPageMixin, PageActionMixin, View):
    """A clinician reopens a signed-off study with a reason (a plain form: a refusal is a flash message)."""

    flash_prefix = "Not reopened: "

    def post(self, request, study_id: int):
        study = selectors.study_get(user=request.user, study_id=study_id)
        self.return_url = reverse("study-detail", args=[study.id])
        form = ReopenForm(request.POST)
        if not form.is_valid():
            raise ValidationError(form.errors.as_data())
        services.study_reopen(study=study, reopened_by=request.user, reason=form.cleaned_data["reason"])
        messages.success(request, "Study reopened.")
        return redirect(self.return_url)


class StudyReportView(PageActionMixin, View):
    """The signed-off study's report, a PDF attachment (``patients.report``). Before sign-off (a link kept from
    before a reopen), back to the study page saying why; the API answers 409 ``study_not_signed``."""

    def get(self, request, study_id: int):
        study = selectors.study_get(user=request.user, study_id=study_id)
        self.return_url = reverse("study-detail", args=[study.id])
        return report.report_response(report.study_report_pdf(study=study, user=request.user), study=study)


class StudyUploadView(PageActionMixin, View):
    """The upload target, one file per request: the new image's card for the script (202, or 200 when the
    study already had these bytes), a redirect with a flash message for a plain form."""

    flash_prefix = "Upload refused: "

    def post(self, request, study_id: int):
        if not request.user.has_perm("patients.add_ultrasoundimage"):
            raise PermissionDenied
        study = selectors.study_get(user=request.user, study_id=study_id)
        self.return_url = reverse("study-detail", args=[study.id])
        form = UploadForm(request.POST, request.FILES)
        if not form.is_valid():
            if "file" in form.errors:
                raise ValidationError({"file": "Choose an image file to upload."})
            raise ValidationError(form.errors.as_data())
        upload = form.cleaned_data["file"]
        result = services.image_upload(
            study=study,
            data=upload.read(),
            filename=upload.name,
            uploaded_by=request.user,
            pixel_size_mm=form.cleaned_data["pixel_size_mm"],
        )
        if is_partial_request(request):
            return _card_response(request, result.image.id, status=202 if result.created else 200)
        if not result.created:
            messages.info(request, "This image was already in the study.")
        return redirect(self.return_url)


class StudyImagesView(PageActionMixin, View):
    """What the study page polls: the cards (each with its ``data-version``) and the plane summary, as one HTML
    fragment (``patients/_study_images.html``); the script swaps in the cards that changed.

    With ``?since=<the last answer's X-Poll-State>`` only the cards changed since then come; with a matching
    If-None-Match, a 304 without a body (the usual answer while a queue stands still)."""

    def get(self, request, study_id: int):
        study = selectors.study_get(user=request.user, study_id=study_id)
        images = list(selectors.image_list(user=request.user, study_id=study.id))
        can_review = user_can_review(request.user)
        versions = {image.id: _image_version(image) for image in images}
        token = _poll_token(study=study, can_review=can_review, versions=versions)
        etag = _poll_etag(token)
        response = get_conditional_response(request, etag=etag)
        if response is None:
            known = _known_digests(request.GET.get("since", ""), current=token)
            changed = [image for image in images if known.get(image.id) != _version_digest(versions[image.id])]
            context = {
                "cards": [_card_context(image, can_review=can_review, user=request.user) for image in changed],
                "summary": selectors.plane_summary(images),
            }
            response = partial_response(request, "patients/_study_images.html", context)
        response["ETag"], response[POLL_STATE_HEADER] = etag, token
        patch_vary_headers(response, [PARTIAL_HEADER])
        return response


class PredictionReviewView(PageActionMixin, View):
    """A clinician confirms or corrects a label; the model's own answer stays on the prediction."""

    def post(self, request, image_id: int):
        image = selectors.image_get(user=request.user, image_id=image_id)
        self.return_url = reverse("study-detail", args=[image.study_id]) + f"#image-{image.id}"
        if not user_can_review(request.user):
            raise PermissionDenied("Only clinicians can review predictions.")
        form = ReviewForm(request.POST)
        if not form.is_valid():
            raise ValidationError(form.errors.as_data())
        classifier_services.image_review(image=image, reviewed_by=request.user, **form.review())
        return _card_action_answer(request, image, return_url=self.return_url, message="Review saved.")


class ImageExcludeView(PageActionMixin, View):
    """A clinician excludes an image from the summary and the report (it stays, with its history)."""

    def post(self, request, image_id: int):
        image = selectors.image_get(user=request.user, image_id=image_id)
        self.return_url = reverse("study-detail", args=[image.study_id]) + f"#image-{image.id}"
        form = ExcludeForm(request.POST)
        if not form.is_valid():
            raise ValidationError(form.errors.as_data())
        services.image_exclude(image=image, excluded_by=request.user, **form.cleaned_data)
        return _card_action_answer(request, image, return_url=self.return_url, message="Image excluded.")


class ImageIncludeView(PageActionMixin, View):
    """A clinician takes an exclusion back."""

    def post(self, request, image_id: int):
        image = selectors.image_get(user=request.user, image_id=image_id)
        self.return_url = reverse("study-detail", args=[image.study_id]) + f"#image-{image.id}"
        services.image_include(image=image, included_by=request.user)
        return _card_action_answer(request, image, return_url=self.return_url, message="Image included again.")


class JobRetryView(PageActionMixin, View):
    """Queue a failed classification again; the card comes back queued."""

    def post(self, request, image_id: int):
        image = selectors.image_get(user=request.user, image_id=image_id)
        self.return_url = reverse("study-detail", args=[image.study_id])
        job = classifier_selectors.image_latest_job(image)
        if job is None:
            raise Http404("This image has no job.")
        classifier_services.classification_job_retry(job=job, retried_by=request.user)
        return _card_action_answer(request, image, return_url=self.return_url)


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
    """Image bytes only after the clinic check; never a public media URL. Pages show the display
    rendition (PNG); the uploaded original is ``ImageOriginalView``'s (a download, never inline)."""

    variant = "display"

    def get(self, request, image_id: int):
        image = selectors.image_get(user=request.user, image_id=image_id)
        # The display file and its thumbnail never change under their name (new bytes are a new upload), so the
        # browser's revalidation ("private, no-cache") gets a 304 without anything read from storage.
        etag = _stored_file_etag(image, self.variant) if self.variant != "heatmap" else None
        if etag and (not_modified := get_conditional_response(request, etag=etag)) is not None:
            not_modified["ETag"], not_modified["Cache-Control"] = etag, IMAGE_CACHE_CONTROL
            return not_modified
        response = self._file_response(request, image)
        if etag and response.status_code == 200:
            response["ETag"] = etag
        return response

    def _file_response(self, request, image) -> HttpResponse:
        if self.variant == "preview" and _stored_format(image) not in BROWSER_FORMATS:
            return _png_response(image)  # only rows from before display renditions: a TIFF stored as uploaded
        if self.variant == "thumbnail":
            stored = services.image_thumbnail(image=image, user=request.user)
            handle, name, content_type = image.file.storage.open(stored, "rb"), f"image-{image.id}.png", "image/png"
        elif self.variant == "heatmap":
            try:
                prediction = classifier_services.image_heatmap_request(image=image, requested_by=request.user)
            except classifier_services.NoHeatmap as error:
                raise Http404(error.message) from None
            if not prediction.heatmap:
                return _heatmap_preparing()
            handle, name, content_type = prediction.heatmap.open("rb"), f"heatmap-{image.id}.png", "image/png"
        else:
            content_type = media_type_of(image.file.name)
            handle, name = image.file.open("rb"), f"image-{image.id}.png"
        response = FileResponse(handle, content_type=content_type, filename=name)
        response["Content-Disposition"] = f'inline; filename="{name}"'
        response["X-Content-Type-Options"] = "nosniff"
        response["Cache-Control"] = IMAGE_CACHE_CONTROL
        return response


class ImageOriginalView(StaffPageMixin, View):
    """The bytes uploaded or received for an image (a .dcm, a PNG...), unchanged, for the study page's "Download
    original": the same selector and headers as the API's ``original/``. Never shown inline: they are not
    sanitised, so an attachment, never sniffed, sandboxed should a browser render it anyway."""

    def get(self, request, image_id: int):
        try:
            image = selectors.image_original_get(user=request.user, image_id=image_id)
        except selectors.OriginalNotKept as error:
            raise Http404(error.message) from None
        extension = image.original.name.rsplit(".", 1)[-1].lower()
        response = FileResponse(
            image.original.open("rb"),
            content_type=media_type_of(image.original.name),
            as_attachment=True,
            filename=f"image-{image.id}.{extension}",
        )
        response["X-Content-Type-Options"] = "nosniff"
        response["Content-Security-Policy"] = "sandbox"
        response["Cache-Control"] = IMAGE_CACHE_CONTROL
        return response


class ImagePlaybackView(StaffPageMixin, View):
    """A cine loop's video (the H.264 MP4 made at upload) for the study page's player, after the same clinic check
    as the image's other files. It answers byte ranges, so the browser can seek without downloading it all."""

    def get(self, request, image_id: int):
        try:  # the API's selector: one rule for which images have a video to play
            image = selectors.clip_playback_get(user=request.user, image_id=image_id)
        except (selectors.NotACine, selectors.PlaybackNotKept) as error:
            raise Http404(error.message) from None
        response = ranged_file_response(
            request, image.playback.open("rb"), size=image.playback.size, content_type="video/mp4"
        )
        response["Content-Disposition"] = f'inline; filename="clip-{image.id}.mp4"'
        response["X-Content-Type-Options"] = "nosniff"
        response["Cache-Control"] = IMAGE_CACHE_CONTROL
        return response


# How long the study page waits before asking again for a heatmap being made (Grad-CAM takes ~0.1 s a still).
HEATMAP_RETRY_AFTER_S = 1


def _heatmap_preparing() -> JsonResponse:
    """202: the heatmap is made on first request (the heatmaps queue); ask again after Retry-After."""
    response = JsonResponse({"status": "preparing", "detail": "The heatmap is being made; ask again shortly."})
    response.status_code = 202
    response["Retry-After"] = str(HEATMAP_RETRY_AFTER_S)
    response["Cache-Control"] = "no-store"
    return response


# Formats every browser shows. The stored display file is a PNG made once at upload and served as it is; a TIFF
# stored before there were display renditions is shown as a PNG made on the fly.
BROWSER_FORMATS = {"PNG", "JPEG", "BMP"}


def _stored_file_etag(image, variant: str) -> str:
    return quote_etag(hashlib.blake2b(f"{variant}:{image.file.name}".encode(), digest_size=8).hexdigest())


def _stored_format(image) -> str:
    return {"png": "PNG", "jpg": "JPEG", "bmp": "BMP"}.get(image.file.name.rsplit(".", 1)[-1].lower(), "")


def _png_response(image) -> HttpResponse:
    with image.file.open("rb") as handle, Image.open(handle) as decoded:
        buffer = io.BytesIO()
        decoded.convert("RGB" if decoded.mode not in ("L", "RGB", "RGBA") else decoded.mode).save(buffer, "PNG")
    response = HttpResponse(buffer.getvalue(), content_type="image/png")
    response["Content-Disposition"] = f'inline; filename="image-{image.id}.png"'
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = IMAGE_CACHE_CONTROL
    return response
