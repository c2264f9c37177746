"""Saga packages for the loading tests: good ones, and one broken way per module."""
