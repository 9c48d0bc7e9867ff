from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "fetalsite.audit"
    label = "audit"
    verbose_name = "Audit: access log"
