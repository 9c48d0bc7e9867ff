from django.db import migrations, models


class Migration(migrations.Migration):
    """A 201's Location header is stored with its answer, so that a replay names the new record too."""

    dependencies = [
        ("core", "0001_idempotencykey"),
    ]

    operations = [
        migrations.AddField(
            model_name="idempotencykey",
            name="response_location",
            field=models.CharField(blank=True, default="", max_length=500),
        ),
    ]
