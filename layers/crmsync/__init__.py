"""crmsync: the domain package shared by every function (shipped as the Lambda layer).

Sub-packages name their layer: ``models`` (PynamoDB items), ``providers`` (one adapter
per external system), ``security`` (tokens, KMS, state, log redaction), ``logic`` (use
cases), ``api`` (HTTP schemas and the problem-document mapping), ``web`` (settings pages).
"""
