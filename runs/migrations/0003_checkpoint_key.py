# Checkpoint keys (exactly-once appends): a nullable column and a partial unique index,
# which holds no row of a run written before keys existed.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0002_checkpoint_run_index_from_constraints"),
    ]

    operations = [
        migrations.AddField(
            model_name="checkpoint",
            name="key",
            field=models.CharField(blank=True, max_length=200, null=True),
        ),
        migrations.AddConstraint(
            model_name="checkpoint",
            constraint=models.UniqueConstraint(
                condition=models.Q(("key__isnull", False)),
                fields=("run", "key"),
                name="checkpoint_run_key_uniq",
            ),
        ),
    ]
