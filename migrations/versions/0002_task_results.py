"""task results: the table luffy.celery_results.DatabaseBackend writes (issue 3)

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "task_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.String(length=155), nullable=False),
        sa.Column("task_name", sa.String(length=255), nullable=True),
        sa.Column("periodic_task_name", sa.String(length=255), nullable=True),
        sa.Column("args", sa.Text(), nullable=False),
        sa.Column("kwargs", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=50), nullable=False),
        sa.Column("worker", sa.String(length=255), nullable=True),
        sa.Column("queue", sa.String(length=100), nullable=True),
        sa.Column("retries", sa.Integer(), nullable=False),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("traceback", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("date_done", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_results")),
        sa.UniqueConstraint("task_id", name=op.f("uq_task_results_task_id")),
    )
    with op.batch_alter_table("task_results", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_task_results_task_name"), ["task_name"], unique=False)
        batch_op.create_index(batch_op.f("ix_task_results_state"), ["state"], unique=False)
        batch_op.create_index(batch_op.f("ix_task_results_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_task_results_date_done"), ["date_done"], unique=False)


def downgrade():
    with op.batch_alter_table("task_results", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_task_results_date_done"))
        batch_op.drop_index(batch_op.f("ix_task_results_created_at"))
        batch_op.drop_index(batch_op.f("ix_task_results_state"))
        batch_op.drop_index(batch_op.f("ix_task_results_task_name"))
    op.drop_table("task_results")
