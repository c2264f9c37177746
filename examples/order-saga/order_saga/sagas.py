"""`order.place`: reserve stock, charge the card, ship; release and refund undo them.

Two versions live side by side, as they do while instances of the older one still run:
version 1 reserves and then charges; version 2 (the newest, which new orders start on) holds
the stock and charges the card at the same time, then ships what the `hold` group reserved.
An instance stays on the version it started with, to the end.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from contracts.base import Identifier
from order_saga import actions as a
from sagas import BuildContext, Parallel, Registry, Saga, Step, StepKind


class OrderInput(BaseModel):
    """Input of order.place."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    order_id: Identifier
    sku: str = Field(min_length=1, max_length=64)
    quantity: int = Field(ge=1, le=10_000)
    card: str = Field(min_length=12, max_length=19, pattern=r"^[0-9]+$")
    amount_cents: int = Field(ge=1)
    address: str = Field(min_length=1, max_length=500)


def _reserve(ctx: BuildContext[OrderInput]) -> a.ReserveStock:
    return a.ReserveStock(
        order_id=ctx.input.order_id, sku=ctx.input.sku, quantity=ctx.input.quantity
    )


def _release(ctx: BuildContext[OrderInput], _result: a.StockReserved | None) -> a.ReleaseStock:
    # By order id, so a reservation whose reply was lost is released all the same.
    return a.ReleaseStock(order_id=ctx.input.order_id)


def _charge(ctx: BuildContext[OrderInput]) -> a.ChargeCard:
    i = ctx.input
    return a.ChargeCard(order_id=i.order_id, card=i.card, amount_cents=i.amount_cents)


def _refund(ctx: BuildContext[OrderInput], _result: a.Charged | None) -> a.RefundCharge:
    return a.RefundCharge(order_id=ctx.input.order_id)


def _ship_v1(ctx: BuildContext[OrderInput]) -> a.Ship:
    held: a.StockReserved = ctx.result("reserve")
    return a.Ship(
        order_id=ctx.input.order_id, reservation_id=held.reservation_id, address=ctx.input.address
    )


def _ship_v2(ctx: BuildContext[OrderInput]) -> a.Ship:
    # A Parallel group's results come by member name.
    held: a.StockReserved = ctx.results("hold")["reserve"]
    return a.Ship(
        order_id=ctx.input.order_id, reservation_id=held.reservation_id, address=ctx.input.address
    )


def _order(data: OrderInput) -> list[str]:
    return [f"order:{data.order_id}"]


RESERVE = Step("reserve", a.ReserveStock, _reserve, compensation=a.ReleaseStock, undo=_release)
CHARGE = Step("charge", a.ChargeCard, _charge, compensation=a.RefundCharge, undo=_refund)

place_order_v1: Saga[OrderInput] = Saga(
    "order.place",
    version=1,
    input=OrderInput,
    description="Reserve stock, then charge the card, then ship.",
    stages=(
        RESERVE,
        CHARGE,
        Step("ship", a.Ship, _ship_v1, kind=StepKind.PIVOT, uses=("reserve",)),
    ),
    resources=_order,
)

place_order_v2: Saga[OrderInput] = Saga(
    "order.place",
    version=2,
    input=OrderInput,
    description="Hold the stock and charge the card at once, then ship.",
    stages=(
        Parallel("hold", (RESERVE, CHARGE)),
        Step("ship", a.Ship, _ship_v2, kind=StepKind.PIVOT, uses=("hold",)),
    ),
    resources=_order,
)

ORDER_SAGAS = (place_order_v1, place_order_v2)
"""Every version of order.place: the package's entry point."""
V1_ONLY: Any = Registry([place_order_v1])
"""Only version 1 (what a coordinator of the previous release ran)."""
V2_ONLY: Any = Registry([place_order_v2])
"""Only version 2 (a coordinator that dropped version 1)."""
