"""In-memory fakes for fast unit tests."""
