"""Indexes for the month's figures on customer_summary: (shop_id, first_order_on) for who
had ordered before a month and who is new in it, (shop_id, lost_on) for the customers past
their "lost" date in a month. Both are range scans of the index alone (customer_id is the
row key), where the reports used to read every summary row of the shop, or probe the
orders of every customer.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_summary_shop_first", "customer_summary", ["shop_id", "first_order_on"])
    op.create_index("ix_summary_shop_lost", "customer_summary", ["shop_id", "lost_on"])


def downgrade() -> None:
    op.drop_index("ix_summary_shop_lost", table_name="customer_summary")
    op.drop_index("ix_summary_shop_first", table_name="customer_summary")
