"""GET /accounts: the tenant's accounts with the engine's live state."""
