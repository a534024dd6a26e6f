"""Saving the emulator's state to a file, so `make dev --persist` survives a restart.

The state and every API store are pickled by value; what is live in a running process —
locks, the push dispatcher, the signing keys, the fault registry, the context — is pickled
by name and re-bound to the new process's objects on load. Only files the emulator itself
wrote are loaded (pickle runs code; never load a file from elsewhere).
"""

from __future__ import annotations

import os
import pickle
import threading
from pathlib import Path
from typing import Any

from devstack.google.server import EmulatorContext

_LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))


def _live(ctx: EmulatorContext) -> dict[int, str]:
    live = {
        id(ctx): "ctx",
        id(ctx.state): "state",
        id(ctx.keys): "keys",
        id(ctx.push): "push",
        id(ctx.faults): "faults",
    }
    live.update({id(store): f"store:{name}" for name, store in ctx.stores.items()})
    return live


class _Pickler(pickle.Pickler):
    def __init__(self, file: Any, live: dict[int, str]) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._live = live

    def persistent_id(self, obj: Any) -> str | None:
        if id(obj) in self._live:
            return self._live[id(obj)]
        if isinstance(obj, _LOCK_TYPES):
            return "rlock" if "RLock" in type(obj).__name__ else "lock"
        if isinstance(obj, threading.Condition | threading.Event):
            return type(obj).__name__.lower()
        return None


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: Any, ctx: EmulatorContext) -> None:
        super().__init__(file)
        self._ctx = ctx

    def persistent_load(self, pid: Any) -> Any:
        fresh = {"lock": threading.Lock, "rlock": threading.RLock, "condition": threading.Condition}
        if pid in fresh:
            return fresh[pid]()
        if pid == "event":
            return threading.Event()
        if isinstance(pid, str) and pid.startswith("store:"):
            return self._ctx.stores[pid.removeprefix("store:")]
        return {
            "ctx": self._ctx,
            "state": self._ctx.state,
            "keys": self._ctx.keys,
            "push": self._ctx.push,
            "faults": self._ctx.faults,
        }[pid]


def save(ctx: EmulatorContext, path: Path) -> None:
    """Write the state and every store (atomically: a crash never leaves half a file)."""
    snapshot = {"state": dict(ctx.state.__dict__), "stores": {n: dict(s.__dict__) for n, s in ctx.stores.items()}}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with ctx.state.lock, tmp.open("wb") as file:
        _Pickler(file, _live(ctx)).dump(snapshot)
    os.replace(tmp, path)


def load(ctx: EmulatorContext, path: Path) -> bool:
    """Restore what :func:`save` wrote into the running objects; False when there is no file."""
    if not path.is_file():
        return False
    with path.open("rb") as file:
        snapshot = _Unpickler(file, ctx).load()
    with ctx.state.lock:
        ctx.state.__dict__.update(snapshot["state"])
        for name, values in snapshot["stores"].items():
            if name in ctx.stores:
                ctx.stores[name].__dict__.update(values)
    return True
