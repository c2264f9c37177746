"""lcm_adapter package."""
