# Senders registered before accounts had the flag: their accounts become service accounts.

from django.db import migrations


def mark(apps, schema_editor):
    User = apps.get_model("accounts", "User")
    DicomPeer = apps.get_model("dicom", "DicomPeer")
    User.objects.filter(id__in=DicomPeer.objects.values("acting_user_id")).update(is_service_account=True)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0005_user_is_service_account"),
        ("dicom", "0001_initial"),
    ]

    operations = [migrations.RunPython(mark, migrations.RunPython.noop)]
