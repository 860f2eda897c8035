"""task results: a per-job expiry time

Revision ID: 0006_task_result_expiry
Revises: 0005_user_session_token

A job enqueued with ``result_ttl`` or ``failure_ttl`` (luffy/jobs/) gets its own expiry time
in ``task_results.expires_at``; the results cleanup deletes a row once that time has passed,
and rows without one after ``result_expires`` as before.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_task_result_expiry"
down_revision = "0005_user_session_token"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("task_results") as batch:
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_task_results_expires_at", ["expires_at"])


def downgrade():
    with op.batch_alter_table("task_results") as batch:
        batch.drop_index("ix_task_results_expires_at")
        batch.drop_column("expires_at")
