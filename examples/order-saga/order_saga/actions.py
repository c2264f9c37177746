"""The wire models of the order services: each action names its service and its result."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from contracts import Action, Result
from contracts.base import Identifier


class StockReserved(Result):
    """Units of a SKU set aside for an order."""

    reservation_id: str
    sku: str
    quantity: int


class ReserveStock(Action):
    """Set aside `quantity` units of `sku` for an order."""

    SERVICE: ClassVar[str] = "stock"
    ACTION: ClassVar[str] = "stock.reserve"
    RESULT: ClassVar[type[Result]] = StockReserved
    order_id: Identifier
    sku: str = Field(min_length=1, max_length=64)
    quantity: int = Field(ge=1, le=10_000)


class StockReleased(Result):
    """A reservation given back (False: there was nothing to give back)."""

    released: bool


class ReleaseStock(Action):
    """Give back what `reserve` set aside for an order (idempotent)."""

    SERVICE: ClassVar[str] = "stock"
    ACTION: ClassVar[str] = "stock.release"
    RESULT: ClassVar[type[Result]] = StockReleased
    order_id: Identifier


class Charged(Result):
    """A card charged."""

    charge_id: str
    amount_cents: int


class ChargeCard(Action):
    """Charge the order's card."""

    SERVICE: ClassVar[str] = "billing"
    ACTION: ClassVar[str] = "billing.charge"
    RESULT: ClassVar[type[Result]] = Charged
    order_id: Identifier
    card: str = Field(min_length=12, max_length=19, pattern=r"^[0-9]+$")
    amount_cents: int = Field(ge=1)


class Refunded(Result):
    """A charge refunded (False: there was no charge to refund)."""

    refunded: bool


class RefundCharge(Action):
    """Refund what `charge` took for an order (idempotent)."""

    SERVICE: ClassVar[str] = "billing"
    ACTION: ClassVar[str] = "billing.refund"
    RESULT: ClassVar[type[Result]] = Refunded
    order_id: Identifier


class Shipped(Result):
    """A parcel on its way."""

    tracking: str


class Ship(Action):
    """Hand the reserved units to the carrier."""

    SERVICE: ClassVar[str] = "shipping"
    ACTION: ClassVar[str] = "shipping.ship"
    RESULT: ClassVar[type[Result]] = Shipped
    order_id: Identifier
    reservation_id: str
    address: str = Field(min_length=1, max_length=500)
