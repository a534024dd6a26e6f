"""Helpers shared by integration, e2e and browser tests."""
