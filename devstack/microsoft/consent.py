"""HTML of the emulator's sign-in/consent page, the "Need admin approval" page and the error page.

The markup is a test interface as much as a UI: account radios are ``name="account"`` with the
email as value, Accept is ``#accept`` and Cancel ``#cancel`` (``name="action"``); the admin
approval page's button is ``#return-to-app``; the form_post page's form is ``#form-post``;
the error page shows the AADSTS line in ``#error-code``. Microsoft's own pages differ in
looks; what the tests rely on is what the app receives on its redirect URI.
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape

from devstack.microsoft.state import Client, PendingAuthorization, User

_STYLE = """
body { font-family: "Segoe UI", system-ui, sans-serif; background: #f2f2f2; margin: 0; }
main { max-width: 28rem; margin: 3rem auto; background: #fff; padding: 2.25rem;
       box-shadow: 0 2px 6px rgba(0,0,0,.2); }
h1 { font-size: 1.5rem; font-weight: 600; margin: 0 0 .75rem; }
.banner { font-size: .8rem; color: #605e5c; margin-bottom: 1.25rem; }
ul { padding: 0; list-style: none; }
li { margin: .35rem 0; }
.account label { display: block; padding: .5rem; border: 1px solid #c8c6c4; cursor: pointer; }
.account .email { color: #605e5c; display: block; font-size: .9rem; }
.scopes li::before { content: "\\2713  "; color: #0067b8; }
.actions { display: flex; gap: .75rem; justify-content: flex-end; margin-top: 1.5rem; }
button { font: inherit; padding: .4rem 1.5rem; cursor: pointer; }
#accept { background: #0067b8; color: #fff; border: 0; }
.error { color: #a80000; }
"""


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<link rel="icon" href="data:,">\n'
        f"<title>{escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n<main>\n"
        '<p class="banner">devstack Microsoft emulator &mdash; not the real Microsoft</p>\n'
        f"{body}\n</main>\n</body>\n</html>\n"
    )


def _hidden(pending: PendingAuthorization) -> str:
    return f'<input type="hidden" name="request_id" value="{escape(pending.request_id)}">'


def render_consent(
    pending: PendingAuthorization, client: Client, users: Iterable[User], action: str, error: str | None = None
) -> str:
    """Pick an account, see what the app asks for, then Accept or Cancel."""
    app = escape(client.name)
    chosen = (pending.login_hint or "").lower()
    user_list = list(users)
    if not any(u.email == chosen for u in user_list) and user_list:
        chosen = user_list[0].email
    accounts = "\n".join(
        f'<li class="account"><label><input type="radio" name="account" value="{escape(u.email)}"'
        f'{" checked" if u.email == chosen else ""}> <span class="name">{escape(u.name)}</span>'
        f' <span class="email">{escape(u.email)}</span>'
        f' <span class="kind">{"Personal account" if u.personal else "Work or school account"}</span></label></li>'
        for u in user_list
    )
    scopes = "\n".join(f'<li data-scope="{escape(s)}">{escape(s)}</li>' for s in pending.scopes)
    error_html = f'<p class="error" role="alert" id="error">{escape(error)}</p>' if error else ""
    body = f"""
<h1>Permissions requested</h1>
<p><strong id="client-name">{app}</strong> would like to:</p>
<ul class="scopes" id="scopes">
{scopes}
</ul>
{error_html}
<form method="post" action="{escape(action)}" id="consent-form">
{_hidden(pending)}
<fieldset><legend>Pick an account</legend>
<ul class="accounts">
{accounts}
</ul>
</fieldset>
<div class="actions">
<button type="submit" id="cancel" name="action" value="cancel">Cancel</button>
<button type="submit" id="accept" name="action" value="accept">Accept</button>
</div>
</form>
"""
    return _page(f"Sign in to {client.name}", body)


def render_admin_approval(pending: PendingAuthorization, client: Client, user: User, action: str) -> str:
    """Microsoft's "Need admin approval" page for a user whose organisation forbids user consent.

    The AADSTS90094 line is what people report seeing on it (pnp/cli-microsoft365#534:
    "AADSTS90094: The grant requires admin permission."); the button returns to the app."""
    body = f"""
<h1>Need admin approval</h1>
<p id="client-name">{escape(client.name)}</p>
<p>{escape(client.name)} needs permission to access resources in your organization that only an
admin can grant. Please ask an admin to grant permission to this app before you can use it.</p>
<p class="error" id="error-code">AADSTS90094: The grant requires admin permission.</p>
<p>Signed in as <span id="account">{escape(user.email)}</span></p>
<form method="post" action="{escape(action)}" id="approval-form">
{_hidden(pending)}
<input type="hidden" name="account" value="{escape(user.email)}">
<button type="submit" id="return-to-app" name="action" value="return">Return to the application without
granting consent</button>
</form>
"""
    return _page("Need admin approval", body)


def render_error(code: str, message: str) -> str:
    """The page Microsoft shows when it must not redirect (unknown app, unregistered URI)."""
    body = f"""
<h1>Sorry, but we're having trouble signing you in.</h1>
<p class="error" id="error-code">{escape(code)}: {escape(message)}</p>
"""
    return _page("Sign in error", body)


def render_form_post(redirect_uri: str, fields: dict[str, str]) -> str:
    """``response_mode=form_post``: a form of the answer's fields that posts itself to the app
    (a button stands in when scripts are off)."""
    hidden = "\n".join(
        f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">' for name, value in fields.items()
    )
    body = f"""
<h1>Working...</h1>
<form method="post" action="{escape(redirect_uri)}" id="form-post">
{hidden}
<noscript><button type="submit">Continue</button></noscript>
</form>
<script>document.getElementById("form-post").submit();</script>
"""
    return _page("Working...", body)
