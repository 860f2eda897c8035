"""users.session_token: logout and a password change end every earlier session

Revision ID: 0005_user_session_token
Revises: 0004

Flask-Login keeps "<user id>:<session_token>" in the session and the remember cookie; the
user loader accepts it only while the token matches the row. Existing users get a token each.
"""

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0005_user_session_token"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("session_token", sa.String(length=64), nullable=False, server_default="")
        )
    users = sa.table("users", sa.column("id", sa.Integer), sa.column("session_token", sa.String))
    connection = op.get_bind()
    for (user_id,) in connection.execute(sa.select(users.c.id)).all():
        connection.execute(
            users.update()
            .where(users.c.id == user_id)
            .values(session_token=secrets.token_urlsafe(24))
        )


def downgrade():
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("session_token")
