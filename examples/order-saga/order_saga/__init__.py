"""An example saga package: placing an order across stock, billing and shipping services.

`order_saga.sagas` defines `order.place` (two versions); `order_saga.actions` its wire
models; `order_saga.participant` the three participants, on the public SDK only.
"""
