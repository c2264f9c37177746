"""The stock, billing and shipping participants, on the public SDK only.

Run: `convection participant order_saga.participant:stock order_saga.participant:billing
order_saga.participant:shipping`. Every change is keyed by order: a redelivery or a second
undo changes nothing.
"""

from __future__ import annotations

from functools import partial

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from convection import Participant, StepContext, StepFailed, handles
from order_saga import actions as a

_DECLINED = "4000000000000002"  # the card the example's bank always declines
_STOCK = (
    "CREATE TABLE IF NOT EXISTS order_stock (sku VARCHAR(64) PRIMARY KEY, available INTEGER)",
    "CREATE TABLE IF NOT EXISTS order_holds (order_id VARCHAR(128) PRIMARY KEY,"
    " sku VARCHAR(64), quantity INTEGER, released BOOLEAN)",
    "INSERT INTO order_stock VALUES ('widget', 100) ON CONFLICT DO NOTHING",
)
_BILLING = (
    "CREATE TABLE IF NOT EXISTS order_charges (order_id VARCHAR(128) PRIMARY KEY,"
    " amount_cents INTEGER, refunded BOOLEAN)",
)
_TAKE = "UPDATE order_stock SET available = available - :q WHERE sku = :s AND available >= :q"
_GIVE = "UPDATE order_stock SET available = available + :q WHERE sku = :s"
_FREE = "UPDATE order_holds SET released = TRUE WHERE order_id = :o AND NOT released"
_REFUND = "UPDATE order_charges SET refunded = TRUE WHERE order_id = :o AND NOT refunded"


class Shop:
    """The three services' handlers over one database."""

    db: AsyncEngine

    async def open(self, schema: tuple[str, ...], db: AsyncEngine) -> None:
        """Create a service's own tables (no two services share one): a start hook."""
        self.db = db
        async with db.begin() as c:
            for sql in schema:
                await c.execute(text(sql))

    @handles(a.ReserveStock)
    async def reserve(self, cmd: a.ReserveStock, ctx: StepContext) -> a.StockReserved:
        """Set units aside, once per order (out of stock is a business failure)."""
        held = {"o": cmd.order_id, "s": cmd.sku, "q": cmd.quantity}
        async with self.db.begin() as c:
            seen = await c.execute(text("SELECT 1 FROM order_holds WHERE order_id = :o"), held)
            if seen.first() is None:
                if not (await c.execute(text(_TAKE), held)).rowcount:
                    raise StepFailed(f"not enough {cmd.sku} in stock", code="out_of_stock")
                await c.execute(text("INSERT INTO order_holds VALUES (:o, :s, :q, FALSE)"), held)
        return a.StockReserved(reservation_id=cmd.order_id, sku=cmd.sku, quantity=cmd.quantity)

    @handles(a.ReleaseStock)
    async def release(self, cmd: a.ReleaseStock, ctx: StepContext) -> a.StockReleased:
        """Give the units back, once (nothing held: nothing to give back)."""
        async with self.db.begin() as c:
            found = await c.execute(text(_FREE + " RETURNING sku, quantity"), {"o": cmd.order_id})
            row = found.first()
            if row is not None:
                await c.execute(text(_GIVE), {"s": row.sku, "q": row.quantity})
        return a.StockReleased(released=row is not None)

    @handles(a.ChargeCard)
    async def charge(self, cmd: a.ChargeCard, ctx: StepContext) -> a.Charged:
        """Charge the card, once per order; a declined card leaves no charge behind."""
        if cmd.card == _DECLINED:
            raise StepFailed("the bank declined the card", code="card_declined")
        sql = "INSERT INTO order_charges VALUES (:o, :c, FALSE) ON CONFLICT DO NOTHING"
        async with self.db.begin() as c:
            await c.execute(text(sql), {"o": cmd.order_id, "c": cmd.amount_cents})
        return a.Charged(charge_id=cmd.order_id, amount_cents=cmd.amount_cents)

    @handles(a.RefundCharge)
    async def refund(self, cmd: a.RefundCharge, ctx: StepContext) -> a.Refunded:
        """Refund the charge, once."""
        async with self.db.begin() as c:
            done = await c.execute(text(_REFUND), {"o": cmd.order_id})
        return a.Refunded(refunded=bool(done.rowcount))

    @handles(a.Ship)
    async def ship(self, cmd: a.Ship, ctx: StepContext) -> a.Shipped:
        """Hand the parcel to the carrier; the idempotency key is the tracking number."""
        return a.Shipped(tracking=f"TRK-{ctx.idempotency_key}")


shop = Shop()
stock = Participant(
    "stock", handlers=[shop.reserve, shop.release], on_start=[partial(shop.open, _STOCK)]
)
billing = Participant(
    "billing", handlers=[shop.charge, shop.refund], on_start=[partial(shop.open, _BILLING)]
)
shipping = Participant("shipping", handlers=[shop.ship])
