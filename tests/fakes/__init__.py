"""In-memory implementations of the provider ports, for tests of what uses them."""
