"""crmsync's local stack: the whole SAM application on loopback (see `devstack.stack.Stack`)."""
