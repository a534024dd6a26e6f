"""Google: OAuth 2.0 / OpenID Connect now; Calendar, Gmail and People adapters later."""
