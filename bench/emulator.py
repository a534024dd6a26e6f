"""Throughput of the Google emulator, so other benchmarks know it is not their bottleneck."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests

from devstack.google import GoogleEmulator

SCOPES = ["https://www.googleapis.com/auth/calendar.readonly"]


@dataclass(frozen=True)
class Throughput:
    label: str
    requests: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds


def _run(url: str, headers: dict[str, str], count: int, threads: int) -> float:
    def worker(n: int) -> None:
        with requests.Session() as session:
            for _ in range(n):
                session.get(url, headers=headers, timeout=10).raise_for_status()

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(worker, [count // threads] * threads))
    return time.perf_counter() - started


def measure(count: int = 1000) -> list[Throughput]:
    out: list[Throughput] = []
    with GoogleEmulator() as emulator:
        emulator.seed_demo_accounts()
        token = requests.post(
            f"{emulator.base_url}/_emulator/tokens", json={"email": "ada@example.com", "scopes": SCOPES}, timeout=10
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        url = f"{emulator.base_url}/calendar/v3/users/me/calendarList"
        _run(url, headers, 50, 1)  # warm-up
        for threads in (1, 2):
            seconds = _run(url, headers, count, threads)
            out.append(Throughput(f"calendarList.list, {threads} client thread(s)", count, seconds))
    return out
