"""The local CalDAV server (Radicale, devstack/caldav) does what the CalDAV adapter and the
tests rely on: RFC 6764 discovery from /.well-known/caldav, the principal, Basic auth that
refuses a wrong or revoked password, calendars made with MKCALENDAR."""

from __future__ import annotations

import uuid

import pytest
import requests

from devstack.caldav import CalDavServer

pytestmark = pytest.mark.integration

PRINCIPAL = '<?xml version="1.0"?><propfind xmlns="DAV:"><prop><current-user-principal/></prop></propfind>'


def user(server: CalDavServer) -> tuple[str, str]:
    email = f"ada-{uuid.uuid4().hex[:8]}@example.com"
    return email, server.add_user(email)


def test_well_known_caldav_redirects_to_the_root(caldav_server: CalDavServer) -> None:
    """RFC 6764 §5: a client starts at /.well-known/caldav and follows the redirect."""
    auth = user(caldav_server)
    answer = requests.request(
        "PROPFIND", f"{caldav_server.base_url}/.well-known/caldav", auth=auth, allow_redirects=False, timeout=10
    )
    assert answer.status_code in (301, 302, 307, 308)
    assert answer.headers["Location"]


def test_the_root_names_the_users_principal(caldav_server: CalDavServer) -> None:
    email, password = user(caldav_server)
    answer = requests.request(
        "PROPFIND",
        f"{caldav_server.base_url}/",
        auth=(email, password),
        headers={"Depth": "0", "Content-Type": "application/xml"},
        data=PRINCIPAL,
        timeout=10,
    )
    assert answer.status_code == 207
    assert "/ada-" in answer.text
    assert "current-user-principal" in answer.text


def test_a_wrong_or_revoked_password_is_refused(caldav_server: CalDavServer) -> None:
    email, password = user(caldav_server)
    url = f"{caldav_server.base_url}/"
    wrong = requests.request("PROPFIND", url, auth=(email, password + "x"), headers={"Depth": "0"}, timeout=10)
    assert wrong.status_code == 401
    caldav_server.remove_user(email)
    revoked = requests.request("PROPFIND", url, auth=(email, password), headers={"Depth": "0"}, timeout=10)
    assert revoked.status_code == 401


def test_a_user_makes_a_calendar_and_nobody_else_reads_it(caldav_server: CalDavServer) -> None:
    ada, other = user(caldav_server), user(caldav_server)
    url = f"{caldav_server.base_url}/{ada[0]}/work/"
    assert requests.request("MKCALENDAR", url, auth=ada, timeout=10).status_code == 201
    assert requests.request("PROPFIND", url, auth=ada, headers={"Depth": "0"}, timeout=10).status_code == 207
    assert requests.request("PROPFIND", url, auth=other, headers={"Depth": "0"}, timeout=10).status_code in (403, 404)


def test_the_server_in_a_process_of_its_own_serves_and_counts() -> None:
    """``python -m devstack.caldav`` (bench/caldav.py runs Radicale apart from the client it
    measures): users are added and requests counted over the control routes, and the process
    ends when its input does."""
    from devstack.caldav.remote import RemoteCalDavServer

    with RemoteCalDavServer() as server:
        email = f"ada-{uuid.uuid4().hex[:8]}@example.com"
        password = server.add_user(email)
        server.layer.clear_calls()
        answer = requests.request(
            "PROPFIND", f"{server.base_url}/", auth=(email, password), headers={"Depth": "0"}, timeout=10
        )
        assert answer.status_code == 207
        refused = requests.request("PROPFIND", f"{server.base_url}/", auth=(email, "wrong"), timeout=10)
        assert refused.status_code == 401
        assert server.layer.count(email) == 2
        assert server.layer.count("someone-else@example.com") == 0
        process = server._process
    assert process is not None
    assert process.returncode == 0
