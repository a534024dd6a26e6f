"""The Microsoft emulator (identity platform and Graph) for the local stack and the tests."""
