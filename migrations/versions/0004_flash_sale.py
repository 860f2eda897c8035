"""flash sale: sales and orders

Revision ID: 0004
Revises: 0003

``sales.remaining_stock`` can never go below zero (CHECK) and a buyer has at most one order
per sale (UNIQUE(sale_id, user_id)): the database's own guards behind the Redis gate.
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "sales",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("course_id", sa.Integer(), nullable=False),
        sa.Column("price", sa.Numeric(precision=10, scale=2), nullable=False),
        sa.Column("total_stock", sa.Integer(), nullable=False),
        sa.Column("remaining_stock", sa.Integer(), nullable=False),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("remaining_stock >= 0", name=op.f("ck_sales_remaining_stock_not_negative")),
        sa.CheckConstraint("remaining_stock <= total_stock", name=op.f("ck_sales_remaining_within_total")),
        sa.CheckConstraint("end_at > start_at", name=op.f("ck_sales_window_not_empty")),
        sa.ForeignKeyConstraint(["course_id"], ["courses.id"], name=op.f("fk_sales_course_id_courses")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sales")),
    )
    with op.batch_alter_table("sales", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sales_course_id"), ["course_id"], unique=False)

    op.create_table(
        "orders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("course_id", sa.Integer(), nullable=False),
        sa.Column("sale_id", sa.Integer(), nullable=False),
        sa.Column("price", sa.Numeric(precision=10, scale=2), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["course_id"], ["courses.id"], name=op.f("fk_orders_course_id_courses")),
        sa.ForeignKeyConstraint(["sale_id"], ["sales.id"], name=op.f("fk_orders_sale_id_sales")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_orders_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sa.UniqueConstraint("sale_id", "user_id", name="uq_orders_sale_id_user_id"),
        sa.UniqueConstraint("ticket", name=op.f("uq_orders_ticket")),
    )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_orders_user_id"), ["user_id"], unique=False)


def downgrade():
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_orders_user_id"))
    op.drop_table("orders")
    with op.batch_alter_table("sales", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sales_course_id"))
    op.drop_table("sales")
