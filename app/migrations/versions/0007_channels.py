"""Real channels: shared access tokens, the SMS log and opt-outs, staff phones, and the
customer's WeCom external-contact id (so a deleted contact becomes a signal).

Columns are added with plain ALTER TABLE ADD COLUMN (batch mode does not recreate the
customer table for an added column), so migration 0005's triggers stay in place.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "access_token",
        sa.Column("app_key", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("token", sqlmodel.sql.sqltypes.AutoString(length=1024), nullable=False),
        sa.Column("expires_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("refreshing_until", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("app_key"),
    )
    op.create_table(
        "sms_message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=160), nullable=False),
        sa.Column("shop_id", sa.Integer(), nullable=True),
        sa.Column("phone", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("purpose", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("template_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("provider_ref", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("error", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["shop_id"], ["shop.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    op.create_index("ix_sms_phone_time", "sms_message", ["phone", "created_at"])
    op.create_index(op.f("ix_sms_message_shop_id"), "sms_message", ["shop_id"])
    op.create_table(
        "sms_opt_out",
        sa.Column("phone", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("word", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("phone"),
    )
    op.add_column(
        "staff", sa.Column("phone", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True)
    )
    op.add_column(
        "customer",
        sa.Column(
            "wecom_external_userid", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True
        ),
    )
    op.create_index("ix_customer_shop_wecom", "customer", ["shop_id", "wecom_external_userid"])


def downgrade() -> None:
    op.drop_index("ix_customer_shop_wecom", table_name="customer")
    if op.get_bind().dialect.name == "sqlite":
        # SQLite >= 3.35 drops a column in place (no table copy, triggers kept).
        op.execute("ALTER TABLE customer DROP COLUMN wecom_external_userid")
        op.execute("ALTER TABLE staff DROP COLUMN phone")
    else:
        op.drop_column("customer", "wecom_external_userid")
        op.drop_column("staff", "phone")
    op.drop_table("sms_opt_out")
    op.drop_index(op.f("ix_sms_message_shop_id"), table_name="sms_message")
    op.drop_index("ix_sms_phone_time", table_name="sms_message")
    op.drop_table("sms_message")
    op.drop_table("access_token")
