"""Import every table so SQLModel.metadata (and Alembic) sees the whole schema."""

from app.channels.models import InboxMessage, PendingQuestion
from app.customers.models import Customer, CustomerSummary
from app.events.models import Event
from app.orders.models import Order
from app.shops.models import Shop, Staff, StaffIdentity

__all__ = [
    "Customer",
    "CustomerSummary",
    "Event",
    "InboxMessage",
    "Order",
    "PendingQuestion",
    "Shop",
    "Staff",
    "StaffIdentity",
]
