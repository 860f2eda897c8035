"""periodic schedules: interval, crontab, clocked and solar schedules, periodic tasks, and the
one-row schedule version beat polls (issue 4)

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ONE_SCHEDULE = (
    "(CASE WHEN interval_id IS NULL THEN 0 ELSE 1 END) + (CASE WHEN crontab_id IS NULL THEN 0 ELSE 1 END)"
    " + (CASE WHEN clocked_id IS NULL THEN 0 ELSE 1 END) + (CASE WHEN solar_id IS NULL THEN 0 ELSE 1 END) = 1"
)


def upgrade():
    op.create_table(
        "clocked_schedules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("clocked_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clocked_schedules")),
    )
    op.create_table(
        "crontab_schedules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("minute", sa.String(length=240), nullable=False),
        sa.Column("hour", sa.String(length=96), nullable=False),
        sa.Column("day_of_week", sa.String(length=64), nullable=False),
        sa.Column("day_of_month", sa.String(length=124), nullable=False),
        sa.Column("month_of_year", sa.String(length=64), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crontab_schedules")),
    )
    op.create_table(
        "interval_schedules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("every", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.CheckConstraint("period IN ('seconds', 'minutes', 'hours', 'days')", name=op.f("ck_interval_schedules_period_known")),
        sa.CheckConstraint("every > 0", name=op.f("ck_interval_schedules_every_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_interval_schedules")),
    )
    op.create_table(
        "schedule_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seeded", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedule_versions")),
    )
    op.create_table(
        "solar_schedules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(length=24), nullable=False),
        sa.Column("latitude", sa.Float(), nullable=False),
        sa.Column("longitude", sa.Float(), nullable=False),
        sa.CheckConstraint("latitude BETWEEN -90 AND 90", name=op.f("ck_solar_schedules_latitude_range")),
        sa.CheckConstraint("longitude BETWEEN -180 AND 180", name=op.f("ck_solar_schedules_longitude_range")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_solar_schedules")),
    )
    op.create_table(
        "periodic_tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("task", sa.String(length=200), nullable=False),
        sa.Column("interval_id", sa.Integer(), nullable=True),
        sa.Column("crontab_id", sa.Integer(), nullable=True),
        sa.Column("clocked_id", sa.Integer(), nullable=True),
        sa.Column("solar_id", sa.Integer(), nullable=True),
        sa.Column("args", sa.Text(), nullable=False),
        sa.Column("kwargs", sa.Text(), nullable=False),
        sa.Column("queue", sa.String(length=200), nullable=True),
        sa.Column("routing_key", sa.String(length=200), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=True),
        sa.Column("headers", sa.Text(), nullable=False),
        sa.Column("expires", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expire_seconds", sa.Integer(), nullable=True),
        sa.Column("one_off", sa.Boolean(), nullable=False),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("total_run_count", sa.Integer(), nullable=False),
        sa.Column("date_changed", sa.DateTime(timezone=True), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.CheckConstraint(ONE_SCHEDULE, name=op.f("ck_periodic_tasks_one_schedule")),
        sa.CheckConstraint("expire_seconds IS NULL OR expire_seconds > 0", name=op.f("ck_periodic_tasks_expire_seconds_positive")),
        sa.CheckConstraint("priority IS NULL OR priority BETWEEN 0 AND 255", name=op.f("ck_periodic_tasks_priority_range")),
        sa.ForeignKeyConstraint(["clocked_id"], ["clocked_schedules.id"], name=op.f("fk_periodic_tasks_clocked_id_clocked_schedules"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["crontab_id"], ["crontab_schedules.id"], name=op.f("fk_periodic_tasks_crontab_id_crontab_schedules"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["interval_id"], ["interval_schedules.id"], name=op.f("fk_periodic_tasks_interval_id_interval_schedules"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["solar_id"], ["solar_schedules.id"], name=op.f("fk_periodic_tasks_solar_id_solar_schedules"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_periodic_tasks")),
        sa.UniqueConstraint("name", name=op.f("uq_periodic_tasks_name")),
    )
    with op.batch_alter_table("periodic_tasks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_periodic_tasks_clocked_id"), ["clocked_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_periodic_tasks_crontab_id"), ["crontab_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_periodic_tasks_enabled"), ["enabled"], unique=False)
        batch_op.create_index(batch_op.f("ix_periodic_tasks_interval_id"), ["interval_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_periodic_tasks_solar_id"), ["solar_id"], unique=False)


def downgrade():
    op.drop_table("periodic_tasks")
    op.drop_table("solar_schedules")
    op.drop_table("schedule_versions")
    op.drop_table("interval_schedules")
    op.drop_table("crontab_schedules")
    op.drop_table("clocked_schedules")
