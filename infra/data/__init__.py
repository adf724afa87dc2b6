"""infra/data package."""
