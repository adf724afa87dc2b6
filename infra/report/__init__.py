"""infra/report package."""
