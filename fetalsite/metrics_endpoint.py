"""/metrics for Prometheus: what the whole deployment did, read from the database at scrape time.

Web hosts are many behind a load balancer and workers run elsewhere, so a counter kept in one process would count
only what that process saw, and scrapes through the balancer would land on different hosts. Every figure here is
an aggregate query over the shared database instead (a handful of queries per scrape, however many rows): any host
answers the same. Not public: a bearer token or an allowed network (settings.METRICS_TOKEN,
METRICS_ALLOWED_NETWORKS); anyone else gets the same 404 as a page that does not exist. docs/metrics.md."""

from __future__ import annotations

import functools
import hmac
import ipaddress
import tomllib
from collections.abc import Iterator
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.views.decorators.cache import never_cache
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

from biometry.models import MeasurementJob
from classifier.labels import PLANE_LABELS
from classifier.models import ClassificationJob, Prediction, WebhookDelivery
from classifier.selectors import active_model_version
from fetalsite.core.client_ip import client_ip
from fetalsite.metrics.models import UploadRefusal

# Seconds. A job waits for a free worker (and a micro-batch); a prediction takes tens of milliseconds.
QUEUE_WAIT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)
INFERENCE_BUCKETS = (0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1, 2.5)
UNKNOWN_RUNTIME = "unknown"  # predictions made before the runtime was recorded (issue 20)


def _bucket_counts(field: str, bounds: tuple[float, ...] | tuple[timedelta, ...], scale: float = 1.0) -> dict:
    """Conditional counts for one aggregate query: ``le_<i>`` = rows with ``field`` <= bound (cumulative, as
    Prometheus buckets are), plus the sum and the count. ``scale`` turns a bound in seconds into the field's unit."""
    counts = {f"le_{i}": Count("id", filter=Q(**{f"{field}__lte": bound * scale})) for i, bound in enumerate(bounds)}
    return {**counts, "total": Sum(field), "n": Count("id")}


def _buckets(row: dict, bounds: tuple[float, ...]) -> list[tuple[str, float]]:
    finite = [(floatToGoString(bound), row[f"le_{i}"]) for i, bound in enumerate(bounds)]
    return [*finite, ("+Inf", row["n"])]


def _by_status(name: str, documentation: str, model) -> Metric:
    """A gauge of ``model``'s rows by ``status``, every status listed (zeros included), in one query."""
    family = GaugeMetricFamily(name, documentation, labels=["status"])
    counts = dict(model.objects.order_by().values_list("status").annotate(n=Count("id")))
    for status in model.Status.values:
        family.add_metric([status], counts.get(status, 0))
    return family


def _jobs() -> Metric:
    return _by_status("fetalsite_classification_jobs", "Classification jobs by status, now.", ClassificationJob)


def _measurement_jobs() -> Metric:
    return _by_status("fetalsite_measurement_jobs", "Head measurement jobs by status, now.", MeasurementJob)


def _queue_wait() -> Metric:
    family = HistogramMetricFamily(
        "fetalsite_job_queue_wait_seconds",
        "Time from a job being queued to a worker starting it (started_at - queued_at), every started job.",
    )
    wait = ExpressionWrapper(F("started_at") - F("queued_at"), output_field=DurationField())
    started = ClassificationJob.objects.filter(started_at__isnull=False).annotate(wait=wait)
    bounds = tuple(timedelta(seconds=bound) for bound in QUEUE_WAIT_BUCKETS)
    row = started.aggregate(**_bucket_counts("wait", bounds))
    total = row["total"].total_seconds() if row["total"] is not None else 0.0
    family.add_metric([], _buckets(row, QUEUE_WAIT_BUCKETS), sum_value=total)
    return family


def _inference() -> Metric:
    family = HistogramMetricFamily(
        "fetalsite_inference_seconds",
        "Preprocessing and prediction time of each image (Prediction.inference_ms), by the runtime that ran it.",
        labels=["runtime"],
    )
    rows = (
        Prediction.objects.order_by("runtime")
        .values("runtime")
        .annotate(**_bucket_counts("inference_ms", INFERENCE_BUCKETS, 1000))
    )
    for row in rows:
        total = (row["total"] or 0.0) / 1000
        family.add_metric([row["runtime"] or UNKNOWN_RUNTIME], _buckets(row, INFERENCE_BUCKETS), sum_value=total)
    return family


def _predictions() -> Metric:
    family = GaugeMetricFamily(
        "fetalsite_predictions",
        "Predictions by the model's label and their review state (suggested until a clinician reviews), now.",
        labels=["label", "review_state"],
    )
    rows = Prediction.objects.order_by().values_list("label", "review_state").annotate(n=Count("id"))
    counts = {(label, state): n for label, state, n in rows}
    labels = [*PLANE_LABELS, *sorted({label for label, _ in counts} - set(PLANE_LABELS))]
    for label in labels:
        for state in Prediction.ReviewState.values:
            family.add_metric([label, state], counts.get((label, state), 0))
    return family


def _upload_refusals() -> Metric:
    family = CounterMetricFamily(
        "fetalsite_upload_refusals",
        "Uploads refused (API, pages, C-STORE, STOW-RS), by the error code they were answered with.",
        labels=["reason"],
    )
    for reason, count in UploadRefusal.objects.order_by("reason").values_list("reason", "count"):
        family.add_metric([reason], count)
    return family


def _webhook_deliveries() -> Metric:
    return _by_status(
        "fetalsite_webhook_deliveries", "Webhook deliveries by their outcome so far, now.", WebhookDelivery
    )


@functools.cache
def _app_version() -> str:
    try:
        with open(settings.BASE_DIR / "pyproject.toml", "rb") as file:
            return tomllib.load(file)["project"]["version"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):  # a deployment without the project file: still scrapable
        return "unknown"


def _build() -> Metric:
    model = active_model_version()
    return InfoMetricFamily(
        "fetalsite_build",
        "The application's version, its API's, and the active model (empty when none is active).",
        value={
            "version": _app_version(),
            "api_version": settings.SPECTACULAR_SETTINGS["VERSION"],
            "model_name": model.name if model else "",
            "model_version": model.version if model else "",
        },
    )


class DatabaseCollector:
    """The deployment's figures, queried when Prometheus scrapes: one query per metric family."""

    def collect(self) -> Iterator[Metric]:
        yield _build()
        yield _jobs()
        yield _measurement_jobs()
        yield _queue_wait()
        yield _inference()
        yield _predictions()
        yield _upload_refusals()
        yield _webhook_deliveries()


REGISTRY = CollectorRegistry(auto_describe=False)  # our own: no per-process figures that would differ by host
REGISTRY.register(DatabaseCollector())


@functools.cache
def _networks(cidrs: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(cidr.strip(), strict=False) for cidr in cidrs if cidr.strip())


def _token_matches(request: HttpRequest) -> bool:
    expected = settings.METRICS_TOKEN
    scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
    if not expected or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(sent.strip().encode(), expected.encode())  # constant time: no guessing by timing


def _from_allowed_network(request: HttpRequest) -> bool:
    networks = _networks(tuple(settings.METRICS_ALLOWED_NETWORKS))
    try:
        address = ipaddress.ip_address(client_ip(request))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped  # a dual-stack listener's view of an IPv4 client
    return any(address in network for network in networks)


def metrics_access_allowed(request: HttpRequest) -> bool:
    return _token_matches(request) or _from_allowed_network(request)


@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus' text format. Refused callers get a 404 whatever the method: the route is not advertised."""
    if not metrics_access_allowed(request):
        raise Http404
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
