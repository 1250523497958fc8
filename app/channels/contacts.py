"""WeCom customer contacts (企业微信客户) linked to the shop's customers.

WeCom reports a deleted contact only by its external_userid, so a customer must carry that
id before the deletion can become a warning. When a member of staff adds a customer contact,
or edits its remark, WeCom's callback names the contact; we read it (externalcontact/get)
and look for the customer it is, the first rule that finds anyone deciding:

1. a mobile number the staff member saved with the contact (remark_mobiles) is the
   customer's phone;
2. else a mobile number written in the remark or description is;
3. else the remark, then the contact's own WeChat name, is the customer's name or an alias.

One customer: linked (and the staff member told). Several: the staff member is asked in
WeCom which one, by number, a pending question answered like the bot's others. Nobody: they
are asked to set the contact's remark in WeCom to the name or phone the shop knows the
customer by; WeCom reports that edit, and the rules run again. Naming the customer in the
remark is how staff say who it is: no new chat command, and the remark keeps the two in step.
`huitou wecom link-contacts` runs the same rules over the contacts staff already have.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from app.bot import pending
from app.bot.context import BotContext
from app.bot.models import PendingQuestion
from app.channels.binding import channel_message, find_sender
from app.channels.inbox import Inbound, act_once
from app.channels.push import PushError
from app.clock import Clock
from app.customers.models import Customer
from app.customers.service import mask_phone
from app.db import read_session, write_session
from app.shops.models import Shop, StaffIdentity
from app.shops.service import get_shop

log = logging.getLogger(__name__)

CHANNEL = "wecom"
ADDED = "add_external_contact"
QUESTION_KIND = "wecom_contact"
# A mainland mobile number inside free text (a remark like "王姐 13812345678").
_MOBILE = re.compile(r"(?<!\d)(?:\+?86)?[ -]?(1[3-9]\d(?:[ -]?\d){8})(?!\d)")


class ContactsApi(Protocol):
    """What linking needs of the WeCom client (app.channels.wecom.WeComClient)."""

    def external_contact(self, external_userid: str) -> dict[str, Any]: ...

    def external_contact_ids(self, userid: str) -> list[str]: ...

    def send_text(self, touser: str, text: str, *, dedupe: bool = False) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Contact:
    """One WeCom customer contact as the shop's staff saved it."""

    external_userid: str
    name: str  # the contact's own WeChat name
    remarks: tuple[str, ...] = ()  # what staff named the contact
    mobiles: tuple[str, ...] = ()  # remark_mobiles
    notes: tuple[str, ...] = ()  # descriptions


def contact_from_api(body: dict[str, Any], *, staff_userid: str) -> Contact:
    """The externalcontact/get answer as a Contact, read from `staff_userid`'s remarks
    (every staff member's, when that one is not among them)."""
    external = body.get("external_contact") or {}
    follows = [f for f in body.get("follow_user") or [] if isinstance(f, dict)]
    own = [f for f in follows if f.get("userid") == staff_userid] or follows

    def texts(key: str) -> tuple[str, ...]:
        return tuple(str(f[key]).strip() for f in own if str(f.get(key) or "").strip())

    return Contact(
        external_userid=str(external.get("external_userid") or ""),
        name=str(external.get("name") or "").strip(),
        remarks=texts("remark"),
        mobiles=tuple(str(m) for f in own for m in f.get("remark_mobiles") or [] if m),
        notes=texts("description"),
    )


def mobile(text: str | None) -> str | None:
    """The 11-digit mobile number in a phone field ("+86 138-1234-5678"), else None."""
    digits = re.sub(r"\D", "", text or "")
    if len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]
    return digits if len(digits) == 11 and digits.startswith("1") else None


@dataclass(frozen=True)
class CustomerRow:
    id: int
    name: str
    aliases: tuple[str, ...]
    phone: str | None  # as mobile() reads it
    external_userid: str | None


@dataclass(frozen=True)
class Found:
    """Who a contact may be, and by which rule (none: nobody)."""

    how: str  # remark_mobile | mobile_in_remark | name | none
    customer_ids: tuple[int, ...] = ()


def find_customers(contact: Contact, rows: Iterable[CustomerRow]) -> Found:
    """The customers `contact` may be: the first rule that matches anyone decides."""
    rows = list(rows)

    def by_phone(numbers: Iterable[str | None]) -> tuple[int, ...]:
        wanted = {n for n in numbers if n}
        return tuple(r.id for r in rows if r.phone and r.phone in wanted)

    def by_name(name: str) -> tuple[int, ...]:
        return tuple(r.id for r in rows if name and (r.name == name or name in r.aliases))

    texts = (*contact.remarks, *contact.notes)
    written = [m.group(1) for text in texts for m in _MOBILE.finditer(text)]
    candidates = (
        ("remark_mobile", by_phone(mobile(m) for m in contact.mobiles)),
        ("mobile_in_remark", by_phone(mobile(m) for m in written)),
        *(("name", by_name(remark)) for remark in contact.remarks),
        ("name", by_name(contact.name)),
    )
    for how, ids in candidates:
        if ids:
            return Found(how, ids)
    return Found("none")


def _rows(session: Session, shop_id: int) -> list[CustomerRow]:
    found = session.exec(
        select(Customer).where(Customer.shop_id == shop_id, Customer.status != "forgotten")
    )
    return [
        CustomerRow(
            id=c.id,
            name=c.name,
            aliases=tuple(c.aliases),
            phone=mobile(c.phone),
            external_userid=c.wecom_external_userid,
        )
        for c in found
        if c.id is not None
    ]


def link(*, session: Session, shop_id: int, customer_id: int, external_userid: str) -> bool:
    """Give the customer this contact's id; True when that is news.

    One contact, one customer of the shop: a later deletion must flag exactly them, so any
    other customer holding the id loses it.
    """
    for other in session.exec(
        select(Customer).where(
            Customer.shop_id == shop_id,
            col(Customer.wecom_external_userid) == external_userid,
            col(Customer.id) != customer_id,
        )
    ):
        other.wecom_external_userid = None
        session.add(other)
    customer = session.get(Customer, customer_id)
    if customer is None or customer.shop_id != shop_id:
        return False
    if customer.wecom_external_userid == external_userid:
        return False
    customer.wecom_external_userid = external_userid
    session.add(customer)
    session.flush()
    return True


def _ask(
    session: Session,
    *,
    shop: Shop,
    sender: str,
    contact: Contact,
    ids: tuple[int, ...],
    clock: Clock,
    ttl_seconds: int,
) -> None:
    """Store the "which one?" question, as the bot's pending.ask does (one per sender)."""
    assert shop.id is not None
    now = clock.now()
    session.merge(
        PendingQuestion(
            shop_id=shop.id,
            sender=sender,
            kind=QUESTION_KIND,
            payload={
                "external_userid": contact.external_userid,
                "contact": _label(contact),
                "candidates": list(ids),
            },
            asked_at=now,
            expires_at=now + timedelta(seconds=ttl_seconds),
        )
    )
    session.flush()


def _label(contact: Contact) -> str:
    """How the question names the contact: WeChat name, and the remark when there is one."""
    remark = next((r for r in contact.remarks if r != contact.name), None)
    if remark and contact.name:
        return f"{contact.name}(备注 {remark})"
    return contact.name or remark or ""


@pending.answers(QUESTION_KIND)
def _answered(ctx: BotContext, payload: dict[str, Any], number: int) -> list[str]:
    """The staff member's "2": that candidate is the contact."""
    candidates = [int(c) for c in payload.get("candidates", [])]
    if not 1 <= number <= len(candidates):
        pending.ask(ctx, QUESTION_KIND, payload)
        return [ctx.render("choice_out_of_range", count=len(candidates))]
    customer = ctx.session.get(Customer, candidates[number - 1])
    if customer is None or customer.shop_id != ctx.shop_id:
        return [ctx.render("no_pending")]
    assert customer.id is not None
    link(
        session=ctx.session,
        shop_id=ctx.shop_id,
        customer_id=customer.id,
        external_userid=str(payload["external_userid"]),
    )
    return [
        channel_message(
            ctx.templates_dir,
            "wecom_contact_linked",
            shop=ctx.shop,
            contact=payload.get("contact", ""),
            customer=customer.name,
        )
    ]


def contact_changed(
    *,
    engine: Engine,
    templates_dir: Path,
    clock: Clock,
    api: ContactsApi,
    staff_userid: str,
    external_userid: str,
    message_key: str,
    change_type: str,
    ttl_seconds: int,
) -> None:
    """A staff member added or edited a customer contact: link it, or ask who it is.

    Runs after the callback was answered (WeCom wants an answer within 5 s; this calls its
    API). Acts once per event; the message to the staff member is sent after the commit.
    """
    bound = find_sender(engine=engine, channel=CHANNEL, external_id=staff_userid)
    if bound is None:
        log.info("wecom contact %s of unbound staff %s ignored", external_userid, staff_userid)
        return
    try:
        body = api.external_contact(external_userid)
    except PushError:
        log.warning("reading WeCom contact %s failed", external_userid, exc_info=True)
        return
    contact = contact_from_api(body, staff_userid=staff_userid)
    contact = replace(contact, external_userid=external_userid)
    sender = f"{CHANNEL}:{staff_userid}"
    fresh = False

    def settle(session: Session, _inbox_id: int) -> list[str]:
        nonlocal fresh
        shop = session.get(Shop, bound.shop_id)
        assert shop is not None
        rows = _rows(session, bound.shop_id)
        found = find_customers(contact, rows)
        names = {r.id: r for r in rows}
        if len(found.customer_ids) == 1:
            (customer_id,) = found.customer_ids
            if not link(
                session=session,
                shop_id=bound.shop_id,
                customer_id=customer_id,
                external_userid=external_userid,
            ):
                return []  # linked already: an edit that changed nothing we match on
            log.info("wecom contact %s linked by %s", external_userid, found.how)
            fresh = True
            return [
                channel_message(
                    templates_dir,
                    "wecom_contact_linked",
                    shop=shop,
                    contact=_label(contact),
                    customer=names[customer_id].name,
                )
            ]
        if any(r.external_userid == external_userid for r in rows):
            return []  # linked before (by an answer); nothing clearer came in
        if not found.customer_ids and change_type != ADDED:
            return []  # asked when it was added; a tag or note edited since is no news
        if found.customer_ids:
            _ask(
                session,
                shop=shop,
                sender=sender,
                contact=contact,
                ids=found.customer_ids,
                clock=clock,
                ttl_seconds=ttl_seconds,
            )
        fresh = True
        choices = [
            {"name": names[i].name, "phone": mask_phone(names[i].phone)} for i in found.customer_ids
        ]
        return [
            channel_message(
                templates_dir,
                "wecom_contact_question",
                shop=shop,
                contact=_label(contact),
                choices=choices,
            )
        ]

    handled = act_once(
        engine=engine,
        clock=clock,
        inbound=Inbound(
            CHANNEL, staff_userid, message_key, f"{change_type} {external_userid}"[:200]
        ),
        shop_id=bound.shop_id,
        action=settle,
    )
    replies = handled.replies
    if fresh and replies:
        try:
            api.send_text(staff_userid, "\n\n".join(replies))
        except PushError:
            log.warning("telling %s about contact %s failed", staff_userid, external_userid)


@dataclass
class LinkReport:
    """What `link_existing_contacts` did, for the operator to read."""

    linked: list[tuple[str, str]] = field(default_factory=list)  # (contact, customer)
    already: int = 0
    several: list[tuple[str, list[str]]] = field(default_factory=list)  # (contact, names)
    unmatched: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # staff userids whose list failed


def link_existing_contacts(*, engine: Engine, api: ContactsApi, shop_ref: str) -> LinkReport:
    """Link every customer contact the shop's WeCom-bound staff have (externalcontact/list,
    then get each). Nobody is asked here: a long list of questions would bury the owner;
    the report names the contacts left for a remark."""
    with read_session(engine) as session:
        shop = get_shop(session=session, ref=shop_ref)
        assert shop.id is not None
        shop_id = shop.id
        userids = list(
            session.exec(
                select(StaffIdentity.external_id).where(
                    StaffIdentity.shop_id == shop_id, StaffIdentity.channel == CHANNEL
                )
            )
        )
    report = LinkReport()
    contacts: dict[str, Contact] = {}
    # The API first, outside any transaction: hundreds of calls must not hold the database.
    for userid in userids:
        try:
            external_ids = api.external_contact_ids(userid)
            for external in external_ids:
                if external not in contacts:
                    body = api.external_contact(external)
                    contact = contact_from_api(body, staff_userid=userid)
                    contacts[external] = replace(contact, external_userid=external)
        except PushError:
            log.warning("listing WeCom contacts of %s failed", userid, exc_info=True)
            report.failed.append(userid)
    with write_session(engine) as session:
        rows = _rows(session, shop_id)
        names = {r.id: r.name for r in rows}
        for external, contact in contacts.items():
            found = find_customers(contact, rows)
            label = _label(contact) or external
            if len(found.customer_ids) == 1:
                (customer_id,) = found.customer_ids
                if link(
                    session=session,
                    shop_id=shop_id,
                    customer_id=customer_id,
                    external_userid=external,
                ):
                    report.linked.append((label, names[customer_id]))
                else:
                    report.already += 1
            elif any(r.external_userid == external for r in rows):
                report.already += 1
            elif found.customer_ids:
                report.several.append((label, [names[i] for i in found.customer_ids]))
            else:
                report.unmatched.append(label)
    return report
