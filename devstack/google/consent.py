"""HTML of the account chooser / consent page and of Google's authorization error page.

The markup is a test interface as much as a UI: account buttons carry ``data-email``,
the other-account input is ``#email`` with submit ``#use-email``, cancel is ``#cancel``.

Granular consent, as Google's: each requested scope beyond the identity ones is a ticked
checkbox (``name="scope"``) the person may untick before choosing an account; the token then
carries only the scopes left ticked (and, with ``include_granted_scopes``, those granted
before). Identity scopes (openid, email, profile) are always granted.
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape

from devstack.google import scopes as scope_names
from devstack.google.state import Account, Client, PendingAuthorization

APPROVE_PATH = "/o/oauth2/v2/auth/approve"

_STYLE = """
body { font-family: system-ui, sans-serif; background: #f1f3f4; margin: 0; }
main { max-width: 28rem; margin: 3rem auto; background: #fff; padding: 2rem;
       border-radius: 8px; border: 1px solid #dadce0; }
h1 { font-size: 1.5rem; font-weight: 400; margin: 0 0 .25rem; }
h2 { font-size: 1rem; font-weight: 500; }
.banner { font-size: .8rem; color: #5f6368; margin-bottom: 1.5rem; }
ul { padding: 0; list-style: none; }
li { margin: .25rem 0; }
button { font: inherit; cursor: pointer; }
.account { width: 100%; text-align: left; padding: .6rem; background: #fff;
           border: 1px solid #dadce0; border-radius: 4px; }
.account:hover { background: #f8f9fa; }
.account .email { color: #5f6368; display: block; font-size: .9rem; }
.scopes li:not(.choice)::before { content: "\\2713  "; color: #1a73e8; }
.error { color: #d93025; }
.actions { display: flex; justify-content: space-between; margin-top: 1.5rem; }
"""


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<link rel="icon" href="data:,">\n'
        f"<title>{escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n<main>\n"
        '<p class="banner">devstack Google emulator &mdash; not the real Google</p>\n'
        f"{body}\n</main>\n</body>\n</html>\n"
    )


def _hidden(pending: PendingAuthorization) -> str:
    return f'<input type="hidden" name="request_id" value="{escape(pending.request_id)}">'


def _scope_item(scope: str, n: int) -> str:
    words = escape(scope_names.describe(scope))
    if scope in scope_names.IDENTITY:
        return f'<li data-scope="{escape(scope)}">{words}</li>'
    # In the account chooser's form: choosing an account submits the boxes still ticked.
    return (
        f'<li data-scope="{escape(scope)}" class="choice"><input type="checkbox" id="scope-{n}" name="scope" '
        f'value="{escape(scope)}" checked> <label for="scope-{n}">{words}</label></li>'
    )


def render_consent(
    pending: PendingAuthorization,
    client: Client,
    accounts: Iterable[Account],
    error: str | None = None,
) -> str:
    """The page shown by the authorization endpoint: choose an account, or cancel."""
    app = escape(client.name)
    scope_items = "\n".join(_scope_item(s, n) for n, s in enumerate(pending.scopes))
    account_items = "\n".join(
        "<li>"
        f'<button type="submit" class="account" name="account" value="{escape(a.email)}" '
        f'data-email="{escape(a.email)}">'
        f'<span class="name">{escape(a.name)}</span> <span class="email">{escape(a.email)}</span>'
        "</button></li>"
        for a in accounts
    )
    hint = escape(pending.login_hint or "")
    error_html = f'<p class="error" role="alert" id="error">{escape(error)}</p>' if error else ""
    body = f"""
<h1>Choose an account</h1>
<p>to continue to <strong id="client-name">{app}</strong></p>
{error_html}
<form method="post" action="{APPROVE_PATH}" id="account-form" aria-label="Accounts">
{_hidden(pending)}
<input type="hidden" name="granular" value="1">
<section aria-labelledby="scopes-heading">
<h2 id="scopes-heading">{app} wants to access your Google Account</h2>
<ul class="scopes" id="scopes">
{scope_items}
</ul>
</section>
<ul class="accounts">
{account_items}
</ul>
</form>
<form method="post" action="{APPROVE_PATH}" id="other-account-form">
{_hidden(pending)}
<label for="email">Use another account</label>
<input type="email" name="email" id="email" autocomplete="email" value="{hint}" required>
<button type="submit" id="use-email" name="action" value="use_email">Continue</button>
</form>
<form method="post" action="{APPROVE_PATH}" id="cancel-form" class="actions">
{_hidden(pending)}
<button type="submit" id="cancel" name="action" value="cancel">Cancel</button>
</form>
"""
    return _page(f"Sign in - {client.name}", body)


def render_error(status: int, error: str, detail: str) -> str:
    """Google's "Access blocked: Authorization Error" page, e.g. ``Error 400: redirect_uri_mismatch``."""
    body = f"""
<h1>Access blocked: Authorization Error</h1>
<p id="error-detail">{escape(detail)}</p>
<p id="error-code">Error {status}: <code>{escape(error)}</code></p>
"""
    return _page(f"Error {status}: {error}", body)
