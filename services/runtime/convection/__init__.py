"""convection package."""
