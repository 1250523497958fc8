"""Risk engine: probabilities, value at risk and fired signals on each customer's summary.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("customer_summary", schema=None) as batch_op:
        batch_op.add_column(sa.Column("churn_probability", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("p_alive", sa.Float(), nullable=True))
        batch_op.add_column(
            sa.Column("clv_cents", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("retained_value_cents", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("value_at_risk_cents", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("findings", sa.JSON(), nullable=False, server_default="[]")
        )
        batch_op.add_column(sa.Column("assessed_on", sa.Date(), nullable=True))
        # The engine's expected interval replaces it; the plain mean stays.
        batch_op.drop_column("median_interval_days")


def downgrade() -> None:
    with op.batch_alter_table("customer_summary", schema=None) as batch_op:
        batch_op.add_column(sa.Column("median_interval_days", sa.Float(), nullable=True))
        batch_op.drop_column("assessed_on")
        batch_op.drop_column("findings")
        batch_op.drop_column("value_at_risk_cents")
        batch_op.drop_column("retained_value_cents")
        batch_op.drop_column("clv_cents")
        batch_op.drop_column("p_alive")
        batch_op.drop_column("churn_probability")
