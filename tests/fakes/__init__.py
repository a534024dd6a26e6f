"""In-memory fakes of the provider ports, for fast tests; each passes its port's contract
suite (``tests/contract/test_*_port.py``) like the real adapter."""
