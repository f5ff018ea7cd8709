"""PostgreSQL fixtures (see module docstring once written)."""
