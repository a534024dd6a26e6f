"""The top layer: each function's composition root (:mod:`.wiring`) and the work the thin
handlers in ``functions/`` hand over (queue records, schedules, webhooks, received mail)."""
