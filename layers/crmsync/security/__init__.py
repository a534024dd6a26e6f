"""Security primitives: token encryption (KMS), random secrets and hashing."""
