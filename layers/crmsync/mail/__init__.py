"""Inbound mail for the BCC logging address (F9): parsing, limits, verdicts."""
