"""ro_adapter package."""
