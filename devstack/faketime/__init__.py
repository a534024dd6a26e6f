"""libfaketime and the local stack (`make test-at`, docs/TESTING.md).

The faked clock travels in environment variables: libfaketime's preload and its settings.
The stack hands them to its Lambda workers, so the whole stack lives at one date; Chromium,
which aborts under libfaketime, is started without them.
"""

from __future__ import annotations

from collections.abc import Mapping


def is_clock_variable(name: str) -> bool:
    """Whether the environment variable ``name`` carries the faked clock."""
    return name == "LD_PRELOAD" or name.startswith("FAKETIME")


def clock_variables(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables of ``environ`` that carry a faked clock (none when the clock is real)."""
    return {k: v for k, v in environ.items() if is_clock_variable(k)}


def without_clock_variables(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` at the real date."""
    return {k: v for k, v in environ.items() if not is_clock_variable(k)}
