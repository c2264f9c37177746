"""vim_adapter package."""
