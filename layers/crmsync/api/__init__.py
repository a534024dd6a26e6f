"""HTTP edge: request/response schemas and the one place domain errors become HTTP."""
