"""Import every table so SQLModel.metadata (and Alembic) sees the whole schema."""

from app.bot.models import PendingQuestion
from app.channels.models import AccessToken, OutboxMessage
from app.customers.models import Customer, CustomerSummary, ShopMatchTag
from app.digest.models import DigestDelivery, DigestRun
from app.events.models import Event, InboxMessage
from app.orders.models import Order
from app.outreach.models import FollowUp, LinkUse
from app.outreach.sms import SmsMessage, SmsOptOut
from app.shops.models import Shop, Staff, StaffIdentity

__all__ = [
    "AccessToken",
    "Customer",
    "CustomerSummary",
    "DigestDelivery",
    "DigestRun",
    "Event",
    "FollowUp",
    "InboxMessage",
    "LinkUse",
    "Order",
    "OutboxMessage",
    "PendingQuestion",
    "Shop",
    "ShopMatchTag",
    "SmsMessage",
    "SmsOptOut",
    "Staff",
    "StaffIdentity",
]
