"""The provider-agnostic sync engine: queue work, scheduled jobs."""
