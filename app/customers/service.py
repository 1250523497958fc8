"""Finding, creating and describing customers; the "who is due" query."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, NamedTuple

from sqlalchemy import bindparam
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from app.clock import Clock
from app.customers.models import OWNER_CLASS_TAG, VALUE_CLASSES, Customer, CustomerSummary
from app.customers.risk import rescore_shop, risk_config
from app.events.service import log_event
from app.orders.models import Order
from app.risk.assess import STAGE_LABELS, Stage, stage_on
from app.risk.config import RiskConfig
from app.risk.signals import BY_CODE, EVENT_SIGNAL_MASK
from app.shops.models import Shop

# D: the owner set this customer aside ("不用追了"): never chased, on no list or digest.
SET_ASIDE_CLASS = "D"


class CustomerError(ValueError):
    """A customer operation that cannot be done as asked."""


def mask_phone(phone: str | None) -> str:
    """138****1234: enough for the owner to recognise, useless to anyone who reads over."""
    if not phone:
        return ""
    digits = phone.strip()
    if len(digits) < 7:
        return "*" * len(digits)
    return f"{digits[:3]}****{digits[-4:]}"


def create_customer(
    *,
    session: Session,
    shop: Shop,
    name: str,
    clock: Clock,
    phone: str | None = None,
    address: str | None = None,
    kind: str = "household",
    aliases: list[str] | None = None,
    staff_id: int | None = None,
    source: str = "chat",
) -> Customer:
    """Create a customer with an empty summary, and log that it happened."""
    name = name.strip()
    if not name or len(name) > 50:
        raise CustomerError("客户名称需为1到50个字")
    assert shop.id is not None
    now = clock.now()
    customer = Customer(
        shop_id=shop.id,
        name=name,
        phone=phone,
        address=address,
        kind=kind,
        aliases=list(aliases or []),
        created_at=now,
    )
    session.add(customer)
    session.flush()
    assert customer.id is not None
    session.add(CustomerSummary(customer_id=customer.id, shop_id=shop.id, updated_at=now))
    log_event(
        session=session,
        shop_id=shop.id,
        customer_id=customer.id,
        kind="customer_created",
        clock=clock,
        data={"name": name},
        source=source,
        staff_id=staff_id,
    )
    return customer


def find_customers(*, session: Session, shop: Shop, query: str, limit: int = 5) -> list[Customer]:
    """Customers the owner may mean by `query`: exact name/alias first, then containment."""
    # Tiers (exact, alias, phone tail, pinyin, containment/address, fuzzy): see matching.py.
    from app.customers.matching import match_customers

    found: list[Customer] = []
    for match in match_customers(session=session, shop=shop, query=query)[:limit]:
        customer = session.get(Customer, match.customer_id)
        if customer is not None and customer.shop_id == shop.id:
            found.append(customer)
    return found


@dataclass(frozen=True)
class DueCustomer:
    """A customer past their usual interval, with the figures the owner sees."""

    customer: Customer
    summary: CustomerSummary
    stage: Stage
    days_since_last: int
    expected_interval_days: float
    churn_probability: float
    value_at_risk_cents: int

    @property
    def stage_label(self) -> str:
        return STAGE_LABELS[self.stage]

    @property
    def overdue_ratio(self) -> float:
        return self.days_since_last / self.expected_interval_days

    @property
    def reason(self) -> str | None:
        """The owner's record that put them on the list (投诉未解决), when not just the gap."""
        return _signal_reason(self.summary.findings)


def _signal_reason(findings: list[dict[str, Any]]) -> str | None:
    for finding in findings:
        spec = BY_CODE.get(str(finding.get("code")))
        if spec is not None and (1 << spec.bit) & int(EVENT_SIGNAL_MASK):
            return spec.label
    return None


@dataclass(frozen=True)
class Named:
    id: int
    name: str


@dataclass(frozen=True)
class DueLine:
    """One line of the chat's follow-up list (跟进名单): what it shows, nothing more."""

    customer: Named
    stage: Stage
    days_since_last: int
    expected_interval_days: float
    value_at_risk_cents: int
    findings: list[dict[str, Any]]

    @property
    def stage_label(self) -> str:
        return STAGE_LABELS[self.stage]

    @property
    def reason(self) -> str | None:
        return _signal_reason(self.findings)


_C = Customer.__table__  # type: ignore[attr-defined]
_S = CustomerSummary.__table__  # type: ignore[attr-defined]
# Built once: 今天该跟进谁 is the command owners send most. Plain rows, no ORM objects: the
# same filter and order as due_customers at a fraction of the cost.
_DUE_COLUMNS = (
    _C.c.id, _C.c.name, _C.c.paused_until, _S.c.stage, _S.c.check_on, _S.c.red_on,
    _S.c.lost_on, _S.c.last_order_on, _S.c.expected_interval_days, _S.c.value_at_risk_cents,
    _S.c.findings,
)  # fmt: skip
_DUE_ROWS = (
    sa_select(*_DUE_COLUMNS)
    .join(_C, _C.c.id == _S.c.customer_id)
    .where(
        _S.c.shop_id == bindparam("shop"),
        _S.c.check_on <= bindparam("today"),
        _S.c.lost_on > bindparam("today"),
        _C.c.status == "active",
        _C.c.value_class != SET_ASIDE_CLASS,
    )
)


def due_list(*, session: Session, shop: Shop, today: date) -> list[DueLine]:
    """due_customers for the chat list: the same customers in the same order, as plain lines
    (tests/core/test_summary.py holds the two to each other)."""
    session.flush()  # a pause or a status set in this session counts (no autoflush here)
    rows = session.execute(_DUE_ROWS, {"shop": shop.id, "today": today})
    due: list[DueLine] = []
    for cid, name, paused, stored, check_on, red_on, lost_on, last, interval, var, found in rows:
        if paused is not None and paused >= today:
            continue
        stage = stage_on(
            stored=stored, check_on=check_on, red_on=red_on, lost_on=lost_on, today=today
        )
        if stage not in (Stage.QUIET, Stage.AT_RISK):
            continue
        due.append(
            DueLine(
                customer=Named(cid, name),
                stage=stage,
                days_since_last=(today - last).days,
                expected_interval_days=interval,
                value_at_risk_cents=var,
                findings=found or [],
            )
        )
    due.sort(key=lambda d: (-d.value_at_risk_cents, d.stage != Stage.AT_RISK, d.customer.id))
    return due


def due_customers(*, session: Session, shop: Shop, today: date) -> list[DueCustomer]:
    """Quiet and at-risk customers on `today`, most at stake first (indexed on check_on);
    never one the owner set aside (class D)."""
    rows = session.exec(
        select(CustomerSummary, Customer)
        .join(Customer, col(Customer.id) == col(CustomerSummary.customer_id))
        .where(
            CustomerSummary.shop_id == shop.id,
            col(CustomerSummary.check_on) <= today,
            col(CustomerSummary.lost_on) > today,
            Customer.status == "active",
            Customer.value_class != SET_ASIDE_CLASS,
        )
    ).all()
    due: list[DueCustomer] = []
    for summary, customer in rows:
        if customer.paused_until is not None and customer.paused_until >= today:
            continue
        assert summary.last_order_on is not None and summary.expected_interval_days
        stage = stage_on(
            stored=summary.stage, check_on=summary.check_on, red_on=summary.red_on,
            lost_on=summary.lost_on, today=today,
        )  # fmt: skip
        if stage not in (Stage.QUIET, Stage.AT_RISK):
            continue
        due.append(
            DueCustomer(
                customer=customer,
                summary=summary,
                stage=stage,
                days_since_last=(today - summary.last_order_on).days,
                expected_interval_days=summary.expected_interval_days,
                churn_probability=summary.churn_probability or 0.0,
                value_at_risk_cents=summary.value_at_risk_cents,
            )
        )
    # What inaction costs first: value at risk, then red before yellow.
    due.sort(key=lambda d: (-d.value_at_risk_cents, d.stage != Stage.AT_RISK, d.customer.id or 0))
    return due


class RecentOrder(NamedTuple):
    """One line of a card's recent orders."""

    order_date: date
    quantity: int
    unit: str
    amount_cents: int | None


_O = Order.__table__.c  # type: ignore[attr-defined]
# Built once: a card reads its customer's last five orders.
_RECENT = (
    sa_select(_O.order_date, _O.quantity, _O.unit, _O.amount_cents)
    .where(_O.customer_id == bindparam("cid"))
    .order_by(_O.order_date.desc(), _O.id.desc())
    .limit(5)
)


@dataclass(frozen=True)
class CustomerCard:
    """Everything the owner's card for one customer shows."""

    customer: Customer
    summary: CustomerSummary
    stage: Stage
    days_since_last: int | None
    recent_orders: list[RecentOrder]

    @property
    def stage_label(self) -> str:
        return STAGE_LABELS[self.stage]

    @property
    def masked_phone(self) -> str:
        return mask_phone(self.customer.phone)


def customer_card(*, session: Session, customer: Customer, today: date) -> CustomerCard:
    """The customer's card: recent orders, usual interval, stage as of `today`."""
    summary = session.get(CustomerSummary, customer.id)
    if summary is None:
        raise CustomerError(f"客户 {customer.name} 缺少汇总记录")
    session.flush()  # orders added in this session count (a Core read does not autoflush)
    rows = session.execute(_RECENT, {"cid": customer.id})
    recent = [RecentOrder(*row) for row in rows]
    return CustomerCard(
        customer=customer,
        summary=summary,
        stage=stage_on(
            stored=summary.stage,
            check_on=summary.check_on,
            red_on=summary.red_on,
            lost_on=summary.lost_on,
            today=today,
        ),
        days_since_last=(today - summary.last_order_on).days if summary.last_order_on else None,
        recent_orders=recent,
    )


# --- the owner's own calls: value class, reminder thresholds ----------------------------------


def set_value_class(*, session: Session, customer: Customer, value_class: str) -> dict[str, Any]:
    """The owner's class for the customer ("王姐 A类"; D sets them aside). It wins over the
    computed one: the nightly rescore leaves a customer so tagged alone. Returns the class
    as it was and whether it was the owner's, for undo and for 恢复提醒."""
    if value_class not in VALUE_CLASSES:
        raise CustomerError(f"unknown value class {value_class!r}")
    before = {"value_class": customer.value_class, "by_owner": OWNER_CLASS_TAG in customer.tags}
    _write_class(session, customer, value_class, by_owner=True)
    return before


def restore_value_class(*, session: Session, customer: Customer, before: dict[str, Any]) -> None:
    """Put back what set_value_class returned (C, the engine's, when nothing was recorded)."""
    value_class = str(before.get("value_class") or "C")
    _write_class(session, customer, value_class, by_owner=bool(before.get("by_owner")))


def _write_class(session: Session, customer: Customer, value_class: str, *, by_owner: bool) -> None:
    tags = [t for t in customer.tags if t != OWNER_CLASS_TAG]
    if by_owner:
        tags.append(OWNER_CLASS_TAG)
    customer.value_class = value_class
    customer.tags = tags
    session.add(customer)


@dataclass(frozen=True)
class ReminderSetting:
    """A reminder threshold the owner may change in chat (设置), within bounds that keep the
    lists useful: a RiskConfig field, its allowed range, and whether it counts whole days."""

    key: str
    low: float
    high: float
    whole: bool = False


REMINDER_SETTINGS: dict[str, ReminderSetting] = {
    s.key: s
    for s in (
        ReminderSetting("quiet_ratio", 1.2, 3.0),  # yellow: overdue by this multiple
        ReminderSetting("at_risk_ratio", 1.5, 5.0),  # red
        ReminderSetting("lost_ratio", 2.0, 8.0),
        ReminderSetting("lost_min_days", 30, 365, whole=True),  # never lost sooner
    )
}
# The multiples must keep yellow < red < lost (RiskConfig checks it too).
_RATIO_ORDER = ("quiet_ratio", "at_risk_ratio", "lost_ratio")


class SettingRefused(ValueError):
    """A threshold outside its range, or one that would pass its neighbour `clash` (which
    it must stay under when `clash_higher`, else above)."""

    def __init__(
        self, setting: ReminderSetting, *, clash: str | None = None, clash_higher: bool = False
    ) -> None:
        super().__init__(setting.key)
        self.setting = setting
        self.clash = clash
        self.clash_higher = clash_higher


def reminder_settings(shop: Shop) -> RiskConfig:
    """The thresholds the shop's lists are built with (its settings over the defaults)."""
    return risk_config(shop)


def set_reminder_setting(
    *, session: Session, shop: Shop, key: str, value: float, clock: Clock
) -> dict[str, Any]:
    """Change one threshold and rescore the shop, so the next list follows it. Returns the
    shop's own setting as it was ({key: None} when the default applied), for undo."""
    setting = REMINDER_SETTINGS[key]
    if not setting.low <= value <= setting.high or (setting.whole and not value.is_integer()):
        raise SettingRefused(setting)
    new: float | int = int(value) if setting.whole else round(value, 2)
    if key in _RATIO_ORDER:
        current = risk_config(shop)
        at = _RATIO_ORDER.index(key)
        below = _RATIO_ORDER[at - 1] if at > 0 else None
        above = _RATIO_ORDER[at + 1] if at + 1 < len(_RATIO_ORDER) else None
        if below and new <= getattr(current, below):
            raise SettingRefused(setting, clash=below)
        if above and new >= getattr(current, above):
            raise SettingRefused(setting, clash=above, clash_higher=True)
    before = {key: shop.settings.get(key)}
    write_reminder_settings(session=session, shop=shop, values={key: new}, clock=clock)
    return before


def write_reminder_settings(
    *, session: Session, shop: Shop, values: dict[str, Any], clock: Clock
) -> None:
    """Store these thresholds (None: back to the default) and rescore the shop with them."""
    own = session.get(Shop, shop.id)
    assert own is not None
    settings = {**own.settings, **values}
    for key, value in values.items():
        if value is None:
            settings.pop(key)
    own.settings = settings
    session.add(own)
    if own is not shop:
        shop.__dict__["settings"] = settings  # the caller's copy, as rescore_shop keeps it
    # Every summary's yellow/red/lost days are computed with the thresholds: recompute now
    # (RiskConfig refuses an inconsistent set there, and the transaction rolls back).
    rescore_shop(session=session, shop=own, clock=clock)
