"""Use cases. Logic raises domain errors and never builds HTTP responses."""
