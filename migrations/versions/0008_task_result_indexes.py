"""task_results indexes for a table of millions of rows

Revision ID: 0008_task_result_indexes
Revises: 0007_schedule_changes

The admin's result list filters by state, task name or periodic task and sorts by creation
time; the dashboard counts the last day by state and lists recent failures. Each gets a
composite index, so none of them scans the table; the single-column indexes they replace go.
"""
from alembic import op

revision = "0008_task_result_indexes"
down_revision = "0007_schedule_changes"
branch_labels = None
depends_on = None

REPLACED = {
    "ix_task_results_created_at": ["created_at"],
    "ix_task_results_state": ["state"],
    "ix_task_results_task_name": ["task_name"],
}
ADDED = {
    "ix_task_results_created_at_state": ["created_at", "state"],
    "ix_task_results_state_created_at": ["state", "created_at"],
    "ix_task_results_task_name_created_at": ["task_name", "created_at"],
    "ix_task_results_periodic_task_name_created_at": ["periodic_task_name", "created_at"],
    "ix_task_results_state_date_done": ["state", "date_done"],
}


def upgrade():
    with op.batch_alter_table("task_results", schema=None) as batch_op:
        for name, columns in ADDED.items():
            batch_op.create_index(name, columns, unique=False)
        for name in REPLACED:
            batch_op.drop_index(name)
        # The admin's search is a task id's beginning (LIKE 'abc%'): PostgreSQL reads such a
        # prefix from an index only with the pattern operator class.
        batch_op.create_index(
            "ix_task_results_task_id_prefix",
            ["task_id"],
            unique=False,
            postgresql_ops={"task_id": "varchar_pattern_ops"},
        )


def downgrade():
    with op.batch_alter_table("task_results", schema=None) as batch_op:
        batch_op.drop_index("ix_task_results_task_id_prefix")
        for name, columns in REPLACED.items():
            batch_op.create_index(name, columns, unique=False)
        for name in ADDED:
            batch_op.drop_index(name)
