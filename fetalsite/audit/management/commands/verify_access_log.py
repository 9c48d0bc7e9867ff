"""Recompute the access log's hash chain; exit non-zero naming the first entry that does not fit."""

from django.core.management.base import BaseCommand, CommandError

from fetalsite.audit.selectors import access_log_verify


class Command(BaseCommand):
    help = "Verify the access log hash chain; exits 1 and names the first broken entry when anything was altered."

    def handle(self, *args, **options):
        report = access_log_verify()
        if not report.ok:
            raise CommandError(
                f"access log chain broken at entry #{report.broken_entry_id}: {report.reason} "
                f"({report.checked} entries before it verified)"
            )
        self.stdout.write(
            self.style.SUCCESS(f"access log intact: {report.checked} entries, head hash {report.head_hash}")
        )
