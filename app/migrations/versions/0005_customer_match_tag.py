"""Customer match tag: a random tag rewritten by the database whenever a customer's
name, aliases, phone, address, status or shop changes (or the row is inserted), so a cached
per-shop match index can tell in one cheap query whether it is still current
(count, sum of tags, max id — see app/customers/matching.py). Plus orders(shop_id, order_date)
for the month summary.

Triggers, not application code, keep the tag current, so every writer in every process
(ORM, Core, raw SQL, another program) invalidates every cache. A later batch migration that
recreates the customer table on SQLite must recreate these triggers.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# 40 random bits (+1): a sum over a million customers still fits in a signed 64-bit integer.
_WATCHED = "name, aliases, phone, address, status, shop_id"

_SQLITE = [
    """CREATE TRIGGER customer_match_tag_insert AFTER INSERT ON customer
    BEGIN
        UPDATE customer SET match_tag = (abs(random()) % 1099511627776) + 1 WHERE id = NEW.id;
    END""",
    f"""CREATE TRIGGER customer_match_tag_update AFTER UPDATE OF {_WATCHED} ON customer
    BEGIN
        UPDATE customer SET match_tag = (abs(random()) % 1099511627776) + 1 WHERE id = NEW.id;
    END""",
]
_POSTGRES = [
    """CREATE FUNCTION customer_match_tag() RETURNS trigger AS $$
    BEGIN
        NEW.match_tag := floor(random() * 1099511627776)::bigint + 1;
        RETURN NEW;
    END
    $$ LANGUAGE plpgsql""",
    f"""CREATE TRIGGER customer_match_tag BEFORE INSERT OR UPDATE OF {_WATCHED} ON customer
    FOR EACH ROW EXECUTE FUNCTION customer_match_tag()""",
]


def upgrade() -> None:
    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("match_tag", sa.BigInteger(), nullable=False, server_default="0")
        )
    op.create_index("ix_orders_shop_date", "orders", ["shop_id", "order_date"])
    dialect = op.get_bind().dialect.name
    for statement in _SQLITE if dialect == "sqlite" else _POSTGRES:
        op.execute(statement)
    # Existing rows get a tag too (the update trigger fires on this no-op write).
    op.execute("UPDATE customer SET status = status")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS customer_match_tag_update")
        op.execute("DROP TRIGGER IF EXISTS customer_match_tag_insert")
    else:
        op.execute("DROP TRIGGER IF EXISTS customer_match_tag ON customer")
        op.execute("DROP FUNCTION IF EXISTS customer_match_tag()")
    op.drop_index("ix_orders_shop_date", table_name="orders")
    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.drop_column("match_tag")
