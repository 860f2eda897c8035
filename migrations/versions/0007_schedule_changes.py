"""schedule change log and the reason beat disabled a row

Revision ID: 0007_schedule_changes
Revises: 0006_task_result_expiry

``schedule_changes`` lists what each schedule edit touched under the version it raised, so
beat re-reads only those rows; ``periodic_tasks.disabled_reason`` says why beat disabled a row
by itself (bad arguments, an unusable schedule, expired).
"""
import sqlalchemy as sa
from alembic import op

revision = "0007_schedule_changes"
down_revision = "0006_task_result_expiry"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "schedule_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=True),
        sa.Column("schedule_table", sa.String(length=32), nullable=True),
        sa.Column("schedule_id", sa.Integer(), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedule_changes")),
    )
    with op.batch_alter_table("schedule_changes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_schedule_changes_version"), ["version"], unique=False)
    with op.batch_alter_table("periodic_tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("disabled_reason", sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table("periodic_tasks", schema=None) as batch_op:
        batch_op.drop_column("disabled_reason")
    op.drop_table("schedule_changes")
