"""A local emulator of Google's OAuth 2.0 / OpenID Connect endpoints for crmsync's dev stack.

See :class:`GoogleEmulator`.
"""

from devstack.google.emulator import GoogleEmulator

__all__ = ["GoogleEmulator"]
