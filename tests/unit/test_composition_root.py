"""The composition root builds one object graph per function: each part once, shared by every
use case that needs it; the Calendar webhook's graph reads no provider settings."""

from __future__ import annotations

import collections
from typing import Any

import pytest

from crmsync.app import wiring
from crmsync.app.wiring import Core, Graph
from crmsync.config import Settings
from crmsync.webhook_config import WebhookSettings

ENV = {
    "PUBLIC_BASE_URL": "https://crm.example.com",
    "CONNECTIONS_TABLE": "connections",
    "OAUTH_STATES_TABLE": "states",
    "TOKEN_KEY_ID": "key",
    "SYNC_QUEUE_URL": "https://sqs.example.com/q.fifo",
}
GOOGLE = {"GOOGLE_CLIENT_ID": "client", "GOOGLE_CLIENT_SECRET_ARN": "arn:secret"}
USE_CASES = (
    "appointments",
    "availability",
    "calendars",
    "calendar_settings",
    "calendar_sync",
    "integrations",
    "planner",
    "bcc_settings",
    "contacts",
    "inbound_mail",
)


def _reachable(roots: list[Any]) -> list[Any]:
    """Every object reachable from ``roots`` through instance attributes, bound methods and
    containers (each once)."""
    seen: dict[int, Any] = {}
    todo = list(roots)
    while todo:
        obj = todo.pop()
        if id(obj) in seen or obj is None or isinstance(obj, str | bytes | int | float | bool | type):
            continue
        seen[id(obj)] = obj
        if hasattr(obj, "__self__") and not isinstance(obj, type):  # a bound method
            todo.append(obj.__self__)
        if isinstance(obj, dict):
            todo.extend(obj.values())
        elif isinstance(obj, list | tuple | set | frozenset):
            todo.extend(obj)
        elif hasattr(obj, "__dict__") and type(obj).__module__.startswith("crmsync."):
            todo.extend(vars(obj).values())
    return list(seen.values())


def test_each_part_is_built_once_and_shared() -> None:
    graph = Graph(Settings.from_env({**ENV, **GOOGLE}))
    objects = _reachable([getattr(graph, name) for name in USE_CASES])
    counts = collections.Counter(type(o).__name__ for o in objects if type(o).__module__.startswith("crmsync."))
    for part in ("TokenCipher", "SyncQueue", "Appointments", "ConnectionStore", "MirrorStore", "Connectors"):
        assert counts[part] == 1, (part, counts[part])
    assert graph.calendar_sync is graph.calendar_sync
    assert graph.connectors is graph.integrations._accounts


def test_building_the_graph_does_no_io_until_a_part_is_used() -> None:
    """Clients (KMS, SQS, Google) are made on first use: a cold start pays for none of them."""
    graph = Graph(Settings.from_env({**ENV, **GOOGLE}))
    assert graph.cipher._kms is None
    assert graph.queue._sqs is None


def test_the_webhook_graph_needs_no_provider_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(GOOGLE):
        monkeypatch.delenv(name, raising=False)
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    wiring.core.cache_clear()
    try:
        core = wiring.core()
        assert type(core) is Core
        assert isinstance(core.settings, WebhookSettings)
        assert core.channel_store is core.channel_store
        assert core.channel_store._table is core.sync_requests._table  # one client for both
    finally:
        wiring.core.cache_clear()
    with pytest.raises(ValueError, match="google"):
        Settings.from_env(ENV)
