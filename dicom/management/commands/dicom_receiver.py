"""Run the DIMSE receiver (C-ECHO, C-STORE) until SIGTERM or Ctrl-C; see docs/dicom.md."""

from __future__ import annotations

import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand

from dicom.receiver import DicomReceiver


class Command(BaseCommand):
    help = "Receive DICOM instances (C-STORE) and answer C-ECHO from the senders registered in the admin."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=settings.DICOM_RECEIVER_HOST, help="address to listen on")
        parser.add_argument("--port", type=int, default=settings.DICOM_RECEIVER_PORT, help="0 picks a free port")
        parser.add_argument("--ae-title", default=settings.DICOM_RECEIVER_AE_TITLE, help="this receiver's AE title")

    def handle(self, *args, host: str, port: int, ae_title: str, **options):
        stopping = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stopping.set())
        receiver = DicomReceiver(host=host, port=port, ae_title=ae_title)
        bound_host, bound_port = receiver.start()
        self.stdout.write(f"DICOM receiver {ae_title} listening on {bound_host}:{bound_port}", ending="\n")
        self.stdout.flush()
        stopping.wait()
        self.stdout.write("Stopping: finishing the associations under way")
        receiver.stop()
        self.stdout.write("DICOM receiver stopped")
