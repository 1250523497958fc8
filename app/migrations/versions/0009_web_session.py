"""Signed-in web chat sessions (网页版): one row per browser sign-in, keyed by the hash of the
cookie's random id; the sign-in link's nonce is unique, so a link opens one session only.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "web_session",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("shop_id", sa.Integer(), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("login_nonce", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("expires_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("ended_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["shop_id"], ["shop.id"]),
        sa.ForeignKeyConstraint(["staff_id"], ["staff.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("login_nonce"),
    )
    op.create_index(op.f("ix_web_session_shop_id"), "web_session", ["shop_id"])
    op.create_index(op.f("ix_web_session_staff_id"), "web_session", ["staff_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_web_session_staff_id"), table_name="web_session")
    op.drop_index(op.f("ix_web_session_shop_id"), table_name="web_session")
    op.drop_table("web_session")
