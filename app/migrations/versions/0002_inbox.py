"""Inbox: idempotent inbound messages, pending questions; orders and events link to them.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "inbox_message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("shop_id", sa.Integer(), nullable=True),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("external_id", sqlmodel.sql.sqltypes.AutoString(length=160), nullable=False),
        sa.Column("sender", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("body", sqlmodel.sql.sqltypes.AutoString(length=4000), nullable=False),
        sa.Column("received_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("handled_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("replies", sa.JSON(), nullable=True),
        sa.Column("error", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["shop_id"],
            ["shop.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("channel", "external_id", name="uq_inbox_channel_ext"),
    )
    with op.batch_alter_table("inbox_message", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_inbox_message_shop_id"), ["shop_id"], unique=False)

    op.create_table(
        "pending_question",
        sa.Column("shop_id", sa.Integer(), nullable=False),
        sa.Column("sender", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("asked_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("expires_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["shop_id"],
            ["shop.id"],
        ),
        sa.PrimaryKeyConstraint("shop_id", "sender"),
    )

    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("inbox_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_orders_inbox_id"), ["inbox_id"], unique=False)
        batch_op.create_foreign_key("fk_orders_inbox_id", "inbox_message", ["inbox_id"], ["id"])

    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("inbox_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key("fk_event_inbox_id", "inbox_message", ["inbox_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.drop_constraint("fk_event_inbox_id", type_="foreignkey")
        batch_op.drop_column("inbox_id")

    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_constraint("fk_orders_inbox_id", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_orders_inbox_id"))
        batch_op.drop_column("inbox_id")

    op.drop_table("pending_question")
    op.drop_table("inbox_message")
