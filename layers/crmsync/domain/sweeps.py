"""Scheduled sweeps without scans, spread over their period.

Three scheduled jobs visit every account of a kind: the connection health check (each
connection every 6 hours), the contacts sync (each contacts-synced user every 15 minutes) and
the mail sync safety net (each mail-synced user every hour). Each such item carries a
``sweep`` attribute, ``<job>#<slot>``, and the sparse ``sweeps`` index (template.yaml,
:mod:`crmsync.models.sweeps`) lists them by it. The scheduler fires every :data:`TICK` and
each job reads the one slot due at that tick: every item is visited once per period, the
work of a period is spread evenly over its ticks (no top-of-the-hour spike of queue messages
and provider calls), and no job scans the table (a scan reads every item of every user: contacts, mirrors, mail).

The slot is a hash of the item's owner (and connection), so it is stable: an account keeps its
rhythm, and a repeated firing of the same tick reads the same slot (its messages are then
deduplicated at the queue by the tick's occasion).
"""

from __future__ import annotations

import zlib
from datetime import UTC, datetime, timedelta
from enum import StrEnum

#: The scheduler's period for every sweep (template.yaml: ``rate(5 minutes)``).
TICK = timedelta(minutes=5)


class Sweep(StrEnum):
    HEALTH = "health"
    CONTACTS = "contacts"
    MAIL = "mail"


#: How often each sweep visits an item.
PERIODS: dict[Sweep, timedelta] = {
    Sweep.HEALTH: timedelta(hours=6),
    Sweep.CONTACTS: timedelta(minutes=15),
    Sweep.MAIL: timedelta(hours=1),
}


def slots(sweep: Sweep) -> int:
    """How many ticks make the sweep's period: the slots its items are spread over."""
    return PERIODS[sweep] // TICK


def sweep_key(sweep: Sweep, tenant_id: str, user_id: str, connection_id: str = "") -> str:
    """The ``sweep`` attribute of an item the sweep visits."""
    owner = f"{tenant_id}#{user_id}#{connection_id}".encode()
    return f"{sweep.value}#{zlib.crc32(owner) % slots(sweep)}"


def tick_of(moment: datetime) -> int:
    """The number of the :data:`TICK` the moment falls in (counted from the epoch)."""
    return int(moment.timestamp()) // int(TICK.total_seconds())


def tick_start(moment: datetime) -> datetime:
    return datetime.fromtimestamp(tick_of(moment) * TICK.total_seconds(), UTC)


def due_key(sweep: Sweep, moment: datetime) -> str:
    """The slot the sweep reads at the tick ``moment`` falls in."""
    return f"{sweep.value}#{tick_of(moment) % slots(sweep)}"


def next_tick_for(key: str, after: datetime) -> datetime:
    """The start of the first tick at or after ``after`` whose due slot is ``key`` (tests and
    tools firing a sweep for one item)."""
    sweep_name, slot = key.split("#", 1)
    n = slots(Sweep(sweep_name))
    tick = tick_of(after)
    tick += (int(slot) - tick) % n
    return datetime.fromtimestamp(tick * TICK.total_seconds(), UTC)
