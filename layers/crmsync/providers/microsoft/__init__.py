"""Microsoft identity (the v2.0 endpoints, through MSAL for Python): signing in with a work,
school or personal Microsoft account. Graph itself is ``crmsync.providers.graph``."""
