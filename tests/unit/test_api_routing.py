"""The API function imports each router on the first request it may serve
(crmsync.web.routing): its table must be what the routers register, and a request must meet
the route the full API would answer it with, whatever the requests before it loaded."""

from __future__ import annotations

import importlib
import itertools
import re
from typing import Any

import pytest

from crmsync.web import routing
from crmsync.web.routing import ROUTERS, Api

FULL = Api.full()


def registered(module: str) -> set[str]:
    return {key[0] for key in importlib.import_module(module).router._routes}


@pytest.mark.parametrize("module", [m for m, _ in ROUTERS])
def test_the_table_names_every_path_a_router_serves(module: str) -> None:
    assert set(dict(ROUTERS)[module]) == registered(module)


def test_every_router_of_the_package_is_in_the_table() -> None:
    assert [m for m, _ in ROUTERS] == list(dict.fromkeys(m for m, _ in ROUTERS))  # once each
    assert len(FULL._static_routes) + len(FULL._dynamic_routes) == sum(
        len(importlib.import_module(m).router._routes) for m, _ in ROUTERS
    )


def first_route(app: Any, method: str, path: str) -> str | None:
    """The route powertools answers ``method path`` with (its path), as its resolver tries them."""
    for route in [*app._static_routes, *app._dynamic_routes]:
        if route.method == method and route.rule.match(path):
            return str(route.path)
    return None


def requests() -> list[tuple[str, str]]:
    """Every route with its parameters filled by every literal segment of the API (the paths
    where two routes may compete) and by a plain value; every method."""
    literals = sorted(
        {part for _, paths in ROUTERS for p in paths for part in p.split("/") if part and "<" not in part}
    )
    out = set()
    for _, paths in ROUTERS:
        for path in paths:
            holes = re.findall(r"<\w+>", path)
            for values in itertools.product([*literals, "x-1"], repeat=len(holes)):
                filled = path
                for value in values:
                    filled = re.sub(r"<\w+>", value, filled, count=1)
                out.add(filled)
    return [(m, p) for p in sorted(out) for m in ("GET", "POST", "PUT", "DELETE", "PATCH")]


REQUESTS = requests()


def test_a_cold_function_answers_each_request_with_the_full_apis_route() -> None:
    for method, path in REQUESTS:
        assert first_route(Api().resolver_for(path), method, path) == first_route(FULL, method, path), (method, path)


@pytest.mark.parametrize("order", ["forward", "backward"])
def test_a_warm_function_answers_each_request_with_the_full_apis_route(order: str) -> None:
    """Routers loaded by the requests before (in two orders) change no answer."""
    api = Api()
    for method, path in REQUESTS if order == "forward" else reversed(REQUESTS):
        assert first_route(api.resolver_for(path), method, path) == first_route(FULL, method, path), (method, path)


def test_a_request_loads_only_the_routers_that_may_serve_it() -> None:
    assert routing.routers_for("/v1/appointments/a-1") == ["crmsync.api.appointments"]
    assert routing.routers_for("/v1/contacts/review") == ["crmsync.api.contact_review", "crmsync.api.contacts"]
    assert routing.routers_for("/nowhere") == []
