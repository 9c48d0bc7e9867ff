from django.db import migrations, models


class Migration(migrations.Migration):
    """Bind each Idempotency-Key to a hash of its request, so a key reused with another body is refused.

    Keys stored before this migration get an empty hash and so match no request: a retry of one of them
    (within its 24 hours) answers 422 instead of replaying an answer to a body that was never compared."""

    dependencies = [
        ("classifier", "0003_novelty"),
    ]

    operations = [
        migrations.AddField(
            model_name="idempotencykey",
            name="request_hash",
            field=models.CharField(default="", max_length=64),
        ),
    ]
