"""Adapters to external systems. Each provider hides its SDK behind a small interface."""
