"""Hostile inputs for Convection's edges, as data: see `tests.hostile.corpus`."""
