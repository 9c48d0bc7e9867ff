from django.apps import AppConfig


class MetricsConfig(AppConfig):
    """Cluster-wide counters for /metrics; below patients, which counts its refused uploads here."""

    name = "fetalsite.metrics"
    label = "metrics"
    verbose_name = "Metrics: counters"
