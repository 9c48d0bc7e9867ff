from django.db import migrations


class Migration(migrations.Migration):
    """IdempotencyKey now belongs to fetalsite.core (core 0001): forget it here, keep its table and rows."""

    dependencies = [
        ("classifier", "0004_idempotency_request_hash"),
        ("core", "0001_idempotencykey"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="IdempotencyKey")],
            database_operations=[],
        ),
    ]
