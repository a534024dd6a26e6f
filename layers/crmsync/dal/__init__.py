"""Data access: the only code that touches PynamoDB. Returns domain objects."""
