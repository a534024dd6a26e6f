"""`make dev`'s Microsoft emulator: the stack starts it on loopback over https with Graph
mounted, seeds the demo users with mailboxes, the banner names its address and the demo
accounts, and the functions trust its CA through REQUESTS_CA_BUNDLE (docs/MICROSOFT.md)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from devstack.__main__ import microsoft_banner
from devstack.stack import ROOT, Stack

pytestmark = pytest.mark.integration

DEMO = ("ada@contoso.test", "grace@outlook.test", "linus@fabrikam.test")


def test_the_stack_runs_the_microsoft_emulator_on_loopback_and_the_banner_names_it(runtime_stack: Stack) -> None:
    emulator = runtime_stack.microsoft
    assert emulator is not None
    assert urlsplit(emulator.base_url).scheme == "https"
    assert ipaddress.ip_address(urlsplit(emulator.base_url).hostname or "").is_loopback
    banner = "\n".join(microsoft_banner(runtime_stack))
    assert emulator.base_url in banner
    for email in DEMO:
        assert email in banner
    assert "linus@fabrikam.test  (work, its organisation requires admin consent)" in banner
    health = requests.get(f"{emulator.base_url}/_microsoft/graph/health", verify=str(emulator.ca_bundle), timeout=10)
    assert health.status_code == 200, health.text
    assert set(DEMO) <= set(runtime_stack.microsoft_graph.state.users)


def test_the_functions_trust_the_emulator_through_requests_ca_bundle(runtime_stack: Stack) -> None:
    """MSAL's Session ``verify`` loses to REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE (psf/requests#4726):
    every function gets the trust bundle (usual CAs plus the emulator's) and no CURL_CA_BUNDLE."""
    emulator = runtime_stack.microsoft
    ca = Path(emulator.ca_bundle).read_text().strip()
    for logical_id in runtime_stack.template.functions:
        env = runtime_stack.worker_environment(logical_id)
        assert "CURL_CA_BUNDLE" not in env
        bundle = Path(env["REQUESTS_CA_BUNDLE"]).read_text()
        assert ca in bundle
        assert bundle.count("BEGIN CERTIFICATE") > 1  # the usual CAs are still there


def test_the_microsoft_emulator_can_be_left_out() -> None:
    stack = Stack(ROOT, microsoft=False, caldav=False, google=False)
    assert stack.microsoft is None
    assert microsoft_banner(stack) == ["  Microsoft emulator off"]
