"""The demo DICOM sender (run by `make run` after seed_demo): storescu on this machine stores into North Clinic."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from dicom.models import DicomPeer
from dicom.services import dicom_peer_create
from fetalsite.accounts.models import Clinic, User

DEMO_AE_TITLE = "STORESCU"  # dcmtk's storescu and echoscu call as STORESCU / ECHOSCU by default: pass -aet STORESCU
DEMO_CLINIC = "North Clinic"
DEMO_ADDRESSES = "127.0.0.1, ::1"


class Command(BaseCommand):
    help = "Register the demo DICOM sender STORESCU (127.0.0.1) for North Clinic; safe to run again."

    def handle(self, *args, **options):
        clinic = Clinic.objects.filter(name=DEMO_CLINIC).first()
        admin = User.objects.filter(username="admin", is_superuser=True).first()
        if clinic is None or admin is None:
            raise CommandError("Run seed_demo first: it creates North Clinic and the superuser admin.")
        if not DicomPeer.objects.filter(ae_title=DEMO_AE_TITLE).exists():
            dicom_peer_create(
                clinic=clinic,
                ae_title=DEMO_AE_TITLE,
                allowed_addresses=DEMO_ADDRESSES,
                description="Demo sender: dcmtk's storescu on this machine",
                created_by=admin,
            )
        ae, host, port = settings.DICOM_RECEIVER_AE_TITLE, settings.DICOM_RECEIVER_HOST, settings.DICOM_RECEIVER_PORT
        self.stdout.write(f"DICOM receiver: AE title {ae} on {host}:{port}")
        self.stdout.write(f"  demo sender: AE title {DEMO_AE_TITLE} from 127.0.0.1, stores into {DEMO_CLINIC}")
        self.stdout.write(f"  try: echoscu -aet {DEMO_AE_TITLE} -aec {ae} {host} {port}")
        self.stdout.write(f"       storescu -aet {DEMO_AE_TITLE} -aec {ae} {host} {port} +sd +r FOLDER_OF_DICOM_FILES")
