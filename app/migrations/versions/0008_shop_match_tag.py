"""One match tag per shop: rewritten with a random value by the database whenever any of the
shop's customers is added, deleted, or has its name, aliases, phone, address, status or shop
changed. A cached match index (app/customers/matching.py) checks it with one primary-key
read, where it used to add up every customer's row tag (migration 0005): that aggregate
cost the number of customers, on every message naming someone inexactly.

Random, not a counter: a change rolled back and another one committed after it could bring
a counter back to a value an index built inside the rolled-back transaction was filed under.

The per-row tags of 0005 are no longer maintained: their triggers are dropped (the column
stays, unused: dropping a column on SQLite recreates the table and its triggers).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WATCHED = "name, aliases, phone, address, status, shop_id"
# 40 random bits (+1), as the row tags were.
_SQLITE_TAG = "(abs(random()) % 1099511627776) + 1"


def _sqlite_touch(shop: str) -> str:
    return (
        f"INSERT INTO shop_match_tag (shop_id, tag) VALUES ({shop}, {_SQLITE_TAG}) "
        f"ON CONFLICT (shop_id) DO UPDATE SET tag = excluded.tag;"
    )


_SQLITE = [
    f"""CREATE TRIGGER shop_match_tag_insert AFTER INSERT ON customer
    BEGIN
        {_sqlite_touch("NEW.shop_id")}
    END""",
    f"""CREATE TRIGGER shop_match_tag_update AFTER UPDATE OF {_WATCHED} ON customer
    BEGIN
        {_sqlite_touch("NEW.shop_id")}
        {_sqlite_touch("OLD.shop_id")}
    END""",
    f"""CREATE TRIGGER shop_match_tag_delete AFTER DELETE ON customer
    BEGIN
        {_sqlite_touch("OLD.shop_id")}
    END""",
]
_POSTGRES = [
    """CREATE FUNCTION shop_match_tag() RETURNS trigger AS $$
    DECLARE
        shops integer[];
        shop integer;
    BEGIN
        IF TG_OP = 'INSERT' THEN
            shops := ARRAY[NEW.shop_id];
        ELSIF TG_OP = 'DELETE' THEN
            shops := ARRAY[OLD.shop_id];
        ELSE
            shops := ARRAY[NEW.shop_id, OLD.shop_id];
        END IF;
        FOREACH shop IN ARRAY shops LOOP
            INSERT INTO shop_match_tag (shop_id, tag)
            VALUES (shop, floor(random() * 1099511627776)::bigint + 1)
            ON CONFLICT (shop_id) DO UPDATE SET tag = excluded.tag;
        END LOOP;
        RETURN NULL;
    END
    $$ LANGUAGE plpgsql""",
    f"""CREATE TRIGGER shop_match_tag AFTER INSERT OR DELETE OR UPDATE OF {_WATCHED}
    ON customer FOR EACH ROW EXECUTE FUNCTION shop_match_tag()""",
]


def upgrade() -> None:
    op.create_table(
        "shop_match_tag",
        sa.Column("shop_id", sa.Integer(), nullable=False),
        sa.Column("tag", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["shop_id"], ["shop.id"]),
        sa.PrimaryKeyConstraint("shop_id"),
    )
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for name in ("customer_match_tag_update", "customer_match_tag_insert"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    else:
        op.execute("DROP TRIGGER IF EXISTS customer_match_tag ON customer")
        op.execute("DROP FUNCTION IF EXISTS customer_match_tag()")
    for statement in _SQLITE if dialect == "sqlite" else _POSTGRES:
        op.execute(statement)
    # Shops that have customers already get their tag.
    tag = _SQLITE_TAG if dialect == "sqlite" else "floor(random() * 1099511627776)::bigint + 1"
    op.execute(
        f"INSERT INTO shop_match_tag (shop_id, tag) SELECT DISTINCT shop_id, {tag} FROM customer"
    )


# Migration 0005's per-row tag triggers, put back by a downgrade.
_ROW_TAG_SQLITE = [
    """CREATE TRIGGER customer_match_tag_insert AFTER INSERT ON customer
    BEGIN
        UPDATE customer SET match_tag = (abs(random()) % 1099511627776) + 1 WHERE id = NEW.id;
    END""",
    f"""CREATE TRIGGER customer_match_tag_update AFTER UPDATE OF {_WATCHED} ON customer
    BEGIN
        UPDATE customer SET match_tag = (abs(random()) % 1099511627776) + 1 WHERE id = NEW.id;
    END""",
]
_ROW_TAG_POSTGRES = [
    """CREATE FUNCTION customer_match_tag() RETURNS trigger AS $$
    BEGIN
        NEW.match_tag := floor(random() * 1099511627776)::bigint + 1;
        RETURN NEW;
    END
    $$ LANGUAGE plpgsql""",
    f"""CREATE TRIGGER customer_match_tag BEFORE INSERT OR UPDATE OF {_WATCHED} ON customer
    FOR EACH ROW EXECUTE FUNCTION customer_match_tag()""",
]


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("shop_match_tag_insert", "shop_match_tag_update", "shop_match_tag_delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        restored = _ROW_TAG_SQLITE
    else:
        op.execute("DROP TRIGGER IF EXISTS shop_match_tag ON customer")
        op.execute("DROP FUNCTION IF EXISTS shop_match_tag()")
        restored = _ROW_TAG_POSTGRES
    for statement in restored:
        op.execute(statement)
    op.drop_table("shop_match_tag")
    # The row tags were not kept while this revision was current: give every row a new one.
    op.execute("UPDATE customer SET status = status")
