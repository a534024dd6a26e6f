"""Local development stack for crmsync: emulators and tooling that stand in for cloud services."""
