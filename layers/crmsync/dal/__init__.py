"""Data access: the only code that touches PynamoDB. Returns domain objects."""


def condition_failed(exc: Exception) -> bool:
    """Whether a PynamoDB write failed on its condition (a version or existence check)."""
    return getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException"
