"""The capacity model for a million connected accounts (issue 17 §3), written to docs/SCALE.md.

Everything per account comes from the last `bench cost` run (its counts of every request of a
simulated day, cached in .devstack/cost.json); the quotas from bench/quotas.json; the sweeps'
spread from crmsync.domain.sweeps and the template. Nothing here is typed in by hand but the
assumptions, which the page lists.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.template import load_template

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "layers") not in sys.path:
    sys.path.insert(0, str(ROOT / "layers"))  # the product's package, as the other benchmarks do

from crmsync.domain.sweeps import TICK, Sweep, slots  # noqa: E402
from crmsync.sync.polling import CONFLICT_TICKS  # noqa: E402

#: Every schedule fires every tick (template.yaml: rate(5 minutes)).
TICKS_A_DAY = int(86_400 // TICK.total_seconds())
#: How many consecutive ticks visit every account once: each sweep's slots (the calendar
#: poll's conflict calendars are due at one tick in CONFLICT_TICKS; the push sweep reads all).
TICKS_A_ROUND = {
    "push_sweep": 1,
    "calendar_poll": CONFLICT_TICKS,
    "contacts_sync": slots(Sweep.CONTACTS),
    "mail_sync": slots(Sweep.MAIL),
    "connection_health": slots(Sweep.HEALTH),
}

QUOTAS = ROOT / "bench" / "quotas.json"
COST_CACHE = ROOT / ".devstack" / "cost.json"
OUT = ROOT / "docs" / "SCALE.md"

#: The sizes the growth table shows.
SIZES = (10_000, 100_000, 1_000_000, 10_000_000)
TARGET = 1_000_000
#: Peak hour over the day's average for what users cause (changes, bookings, mail): a
#: working day's activity in about 8 hours. Scheduled work is spread and flat.
PEAK = 3.0
#: One SendMessageBatch of 10 on AWS, as planned (not measured here: moto is not SQS).
BATCH_SECONDS = 0.020
#: SyncQueue.batching's senders in the scheduler.
SENDERS = 8
#: What a scheduler invocation keeps for its own reads and start.
SCHEDULER_MARGIN_SECONDS = 10.0
#: The account of the cost model (issue 17): its items each sweep visits.
PROFILE = {
    "connections": 3,  # two Google accounts and the iCloud one
    "contacts_users": 1,
    "mail_users": 1,
    "polled_conflict_calendars": 1,  # the iCloud conflict calendar, every 15 minutes
    "polled_linked_calendars": 0,
}


@dataclass(frozen=True)
class Limit:
    """One limit the load meets as accounts grow: its capacity and one account's share."""

    name: str
    capacity: float
    unit: str
    per_account: float  # in the capacity's unit, at the hour the limit is checked at
    change: str
    source: str = ""

    @property
    def accounts(self) -> float:
        return math.inf if self.per_account <= 0 else self.capacity / self.per_account


def quotas() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(QUOTAS.read_text())
    return data


def cost_figures() -> dict[str, Any]:
    """The last `bench cost` run's figures (run it first: `python -m bench cost`)."""
    if not COST_CACHE.exists():
        raise SystemExit(f"{COST_CACHE.relative_to(ROOT)} is missing: run `python -m bench cost` first")
    data: dict[str, Any] = json.loads(COST_CACHE.read_text())
    return data


def per_second(per_day: float, peak: float = PEAK) -> float:
    return per_day / 86_400 * peak


def scheduler_timeout() -> float:
    resources = load_template(ROOT / "template.yaml").data["Resources"]
    return float(resources["SchedulerFunction"]["Properties"].get("Timeout", 3))


def fanout_per_tick() -> dict[str, float]:
    """Messages one account adds to one tick of each sweep (the sweeps are spread evenly over
    their slots: crmsync.domain.sweeps; the calendar poll's conflict calendars over three ticks)."""
    return {
        "connection_health": PROFILE["connections"] / slots(Sweep.HEALTH),
        "contacts_sync": PROFILE["contacts_users"] / slots(Sweep.CONTACTS),
        "mail_sync": PROFILE["mail_users"] / slots(Sweep.MAIL),
        "calendar_poll": PROFILE["polled_linked_calendars"] + PROFILE["polled_conflict_calendars"] / CONFLICT_TICKS,
    }


def provider_rates(cost: dict[str, Any], q: dict[str, Any]) -> dict[str, float]:
    """Per account per day: Calendar requests, Gmail quota units, People requests, Graph, CalDAV."""
    google: dict[str, float] = cost["requests"].get("google", {})
    units = q["gmail_units"]
    calendar = sum(n for op, n in google.items() if op.startswith("calendar."))
    gmail_units = 0.0
    for op, n in google.items():
        if op.startswith("gmail."):
            # "gmail.users.history.list" -> "history.list"; an unlisted method counts 5 units.
            method = op.removeprefix("gmail.").removeprefix("users.").split(" ")[0]
            gmail_units += n * units.get(method, 5)
    people = sum(n for op, n in google.items() if op.startswith("people."))
    return {
        "calendar": calendar,
        "gmail_units": gmail_units,
        "people": people,
        "oauth": sum(n for op, n in google.items() if op.startswith("oauth2.")),
        "graph": sum(cost["requests"].get("graph", {}).values()),
        "caldav": sum(cost["requests"].get("caldav", {}).values()),
    }


def _put_events_entries(events: dict[str, float]) -> float:
    """PutEvents' entries (what the quota counts), not requests and entries both."""
    return events.get("PutEvents entries", events.get("PutEvents", 0.0))


def limits(cost: dict[str, Any], q: dict[str, Any]) -> list[Limit]:
    quota = q["quotas"]
    requests: dict[str, dict[str, float]] = cost["requests"]

    def src(name: str) -> str:
        return str(quota[name]["source"])

    found: list[Limit] = []
    # Lambda: concurrency = arrival rate x duration (Little's law), at the peak hour.
    concurrency = sum(per_second(f["invocations"]) * f["mean_ms"] / 1000 for f in cost["lambda_functions"].values())
    found.append(
        Limit(
            "Lambda concurrent executions (all functions)",
            quota["lambda_concurrency"]["limit"],
            "executions",
            concurrency,
            "ask for a higher regional concurrency quota (a routine increase); reserve some for the API",
            src("lambda_concurrency"),
        )
    )
    sqs = requests.get("sqs", {})
    busiest_sqs = max(sqs.items(), key=lambda kv: kv[1], default=("none", 0.0))
    found.append(
        Limit(
            f"SQS FIFO calls per action (busiest: {busiest_sqs[0]})",
            quota["sqs_fifo_high_throughput_tps"]["limit"],
            "calls/s",
            per_second(busiest_sqs[1]),
            "a second sync queue sharded by account (the limit is per queue), or batching the webhooks' sends",
            src("sqs_fifo_high_throughput_tps"),
        )
    )
    for table, units in sorted(cost["dynamodb_units"].items()):
        for kind, unit in (("read", "rru"), ("write", "wru")):
            found.append(
                Limit(
                    f"DynamoDB {table} {kind} units",
                    quota[f"dynamodb_table_{unit}"]["limit"],
                    f"{unit.upper()}/s",
                    per_second(units[unit]),
                    "raise the table's on-demand maximum (adjustable), then the account quota",
                    src(f"dynamodb_table_{unit}"),
                )
            )
    kms = sum(requests.get("kms", {}).values())
    found.append(
        Limit(
            "KMS symmetric requests",
            quota["kms_symmetric_rps"]["limit"],
            "requests/s",
            per_second(kms),
            "ask for more (adjustable); or cache decrypted credentials longer in warm functions",
            src("kms_symmetric_rps"),
        )
    )
    found.append(
        Limit(
            "API Gateway requests",
            quota["apigateway_rps"]["limit"],
            "requests/s",
            per_second(sum(requests.get("apigateway", {}).values())),
            "ask for a higher account throttle (adjustable)",
            src("apigateway_rps"),
        )
    )
    found.append(
        Limit(
            "EventBridge PutEvents",
            quota["eventbridge_putevents_tps"]["limit"],
            "entries/s",
            per_second(_put_events_entries(requests.get("events", {}))),
            "ask for more (adjustable); batch 10 entries per PutEvents (the cost model's next win too)",
            src("eventbridge_putevents_tps"),
        )
    )
    rates = provider_rates(cost, q)
    found.append(
        Limit(
            "Google Calendar requests per minute (project)",
            quota["google_calendar_per_minute"]["limit"],
            "requests/min",
            per_second(rates["calendar"]) * 60,
            "ask Google for a higher per-project quota (the console's Quotas page); more push, less polling",
            src("google_calendar_per_minute"),
        )
    )
    found.append(
        Limit(
            "Google Calendar requests per day before Google bills (project)",
            quota["google_calendar_billing_threshold_day"]["limit"],
            "requests/day",
            rates["calendar"],
            "budget Google's Calendar price (announced later in 2026) or fewer calls per account; cannot be raised",
            src("google_calendar_billing_threshold_day"),
        )
    )
    found.append(
        Limit(
            "Gmail quota units per minute (project)",
            quota["gmail_units_per_minute"]["limit"],
            "units/min",
            per_second(rates["gmail_units"]) * 60,
            "ask Google for more units; the hourly safety net's history.list is the floor (2 units)",
            src("gmail_units_per_minute"),
        )
    )
    timeout = scheduler_timeout()
    send_rate = SENDERS * 10 / BATCH_SECONDS
    per_tick = max(fanout_per_tick().items(), key=lambda kv: kv[1])
    found.append(
        Limit(
            f"one scheduler invocation's fan-out per tick (busiest: {per_tick[0]})",
            send_rate * max(timeout - SCHEDULER_MARGIN_SECONDS, 0.0),
            "messages/tick",
            per_tick[1],
            "split a tick's slot over several invocations (a fan-out message per index page) or shorter ticks",
            "template.yaml SchedulerFunction Timeout; SyncQueue.batching",
        )
    )
    return found


def fmt(n: float) -> str:
    if math.isinf(n):
        return "∞"
    if n >= 100:
        return f"{n:,.0f}"
    if n >= 1:
        return f"{n:,.1f}"
    return f"{n:.3g}"


def accounts(n: float) -> str:
    if math.isinf(n):
        return "never"
    if n >= 1e6:
        return f"{n / 1e6:,.1f} M"
    if n >= 1e3:
        return f"{n / 1e3:,.0f} k"
    return f"{n:,.0f}"


def provider_rows(rates: dict[str, float]) -> list[str]:
    """The providers table: per account a day, at a million accounts' peak, the quota."""

    def minute(n: float) -> str:
        return f"{fmt(per_second(n) * 60 * TARGET)}/min"

    def second(n: float) -> str:
        return f"{fmt(per_second(n) * TARGET)}/s"

    rows = [
        (
            "Google Calendar requests",
            rates["calendar"],
            f"{minute(rates['calendar'])}, {fmt(rates['calendar'] * TARGET)}/day",
            "10,000/min per project (adjustable); 600/min per user; 1,000,000/day before Google bills (not adjustable)",
        ),
        (
            "Gmail quota units",
            rates["gmail_units"],
            minute(rates["gmail_units"]),
            "1,200,000/min per project; 15,000/min per user",
        ),
        (
            "People (contacts) requests",
            rates["people"],
            minute(rates["people"]),
            "per-project read quota on the console's Quotas page (no public figure found): ask before launch",
        ),
        ("Google OAuth token requests", rates["oauth"], second(rates["oauth"]), "not published"),
        (
            "Microsoft Graph requests",
            rates["graph"],
            second(rates["graph"]),
            "10,000 per 10 minutes per app per mailbox (ours: a few a day)",
        ),
        ("CalDAV (iCloud) requests", rates["caldav"], second(rates["caldav"]), "not published"),
    ]
    return [f"| {name} | {fmt(day)} | {peak} | {quota} |" for name, day, peak, quota in rows]


def render(cost: dict[str, Any], q: dict[str, Any]) -> str:
    found = sorted(limits(cost, q), key=lambda limit: limit.accounts)
    rates = provider_rates(cost, q)
    lines = [
        "# Capacity for a million connected accounts",
        "",
        "Written by `python -m bench scale` (in `make bench`, after `bench cost`) from the counts of",
        f"the last cost run ({cost['accounts']} accounts, a simulated day, {cost.get('measured_at', '?')}:",
        "docs/PERFORMANCE.md, *Cost per connected account*), the quotas in bench/quotas.json (each",
        "with its source and the date it was checked) and the sweeps' slots (crmsync.domain.sweeps).",
        "Figures are for the cost model's account: 2 Google accounts, a linked and 3 conflict",
        "calendars, 20 calendar changes and 5 CRM bookings a day, 30 Gmail and 5 BCC mails a day,",
        "200 contacts with 2 changes a day, an iCloud conflict calendar polled every 15 minutes.",
        "",
        "Assumptions:",
        f"- the peak hour carries {PEAK:g}× the day's average (a working day in ~8 hours); every rate",
        "  below is at that peak, also the scheduled work (which is flat: an overstatement);",
        f"- a SendMessageBatch of 10 takes {BATCH_SECONDS * 1000:.0f} ms on AWS; the scheduler sends {SENDERS}",
        "  batches at a time (`SyncQueue.batching`);",
        "- durations are the local stack's (2 shared cores), warm; AWS's are shorter for CPU and longer",
        "  for network round trips.",
        "- the cost run's few accounts fill the scheduler's SendMessageBatch calls with one or two",
        "  messages each; at scale each carries ten, so that line is about ten times too high here;",
        "- a warm function's caches (access tokens, data keys) are reused more in a day compressed into",
        "  minutes than across many containers: Google token requests are a floor.",
        "",
        f"## Requests per second at {TARGET:,} accounts (peak hour)",
        "",
        "| service | requests/s | busiest operations |",
        "| --- | ---: | --- |",
    ]
    for service, ops in sorted(cost["requests"].items(), key=lambda kv: -sum(kv[1].values())):
        if service == "logs":
            continue
        # "PutEvents entries" counts what a PutEvents carries, not requests.
        ops = {op: n for op, n in ops.items() if not op.endswith(" entries")}
        total = per_second(sum(ops.values())) * TARGET
        top = ", ".join(
            f"{op} {fmt(per_second(n) * TARGET)}" for op, n in sorted(ops.items(), key=lambda kv: -kv[1])[:3]
        )
        lines.append(f"| {service} | {fmt(total)} | {top} |")
    log_bytes = sum(cost["log_bytes"].values())
    lines += [
        "",
        f"CloudWatch Logs: {fmt(per_second(log_bytes) * TARGET / 1e6)} MB/s ingested at the peak hour"
        f" ({fmt(log_bytes * TARGET / 1e9)} GB a day).",
        "",
        "## Providers",
        "",
        "| provider | per account a day | at 1 M accounts, peak | quota |",
        "| --- | ---: | ---: | --- |",
        *provider_rows(rates),
        "",
        "Per user every provider sees a few requests an hour: far below any per-user quota; the",
        "per-project quotas are what grows with the accounts.",
        "",
        "## Lambda concurrency",
        "",
        "Arrival rate × mean duration (Little's law), at the peak hour:",
        "",
        "| function | invocations a day per account | mean ms | memory MB | concurrency at 1 M |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    total_concurrency = 0.0
    for name, f in sorted(cost["lambda_functions"].items()):
        concurrency = per_second(f["invocations"]) * f["mean_ms"] / 1000 * TARGET
        total_concurrency += concurrency
        lines.append(
            f"| {name} | {fmt(f['invocations'])} | {fmt(f['mean_ms'])} | {f['memory_mb']:.0f} | {fmt(concurrency)} |"
        )
    lines += [
        f"| **all** | | | | **{fmt(total_concurrency)}** |",
        "",
        "The sync queue is FIFO: its event source runs at most one batch per message group at a time,",
        "and groups are per user, calendar or mailbox, so the concurrency spreads over accounts.",
        "",
        "## Keys: no hot partition, no hot message group",
        "",
        "Every item of a user lives in the user's partition (`pk = T#<tenant>#U#<user>`), so a",
        "partition carries one account's load; what all accounts share is spread by hash:",
        "",
        "| table | distinct keys seen | busiest key's share of requests | one key's share if spread evenly |",
        "| --- | ---: | ---: | ---: |",
    ]
    for table, share in sorted(cost["busiest_partition_share"].items()):
        keys = cost["partitions"].get(table, 0)
        even = 1 / keys if keys else 0.0
        lines.append(f"| {table} | {keys} | {share:.1%} | {even:.1%} |")
    lines += [
        "",
        f"With {cost['accounts']} accounts the busiest key is one account's own partition (its share",
        "falls as accounts grow); no key is shared by all accounts but the sweeps' index partitions,",
        "which are read once per tick, not written by the accounts' activity:",
        "",
        "| shared key | partitions | items each at 1 M accounts | read | written |",
        "| --- | ---: | ---: | --- | --- |",
        f"| `sweeps` `health#k` | {slots(Sweep.HEALTH)} | {fmt(TARGET * PROFILE['connections'] / slots(Sweep.HEALTH))}"
        " | one Query a tick (5 min) | when a connection is stored |",
        f"| `sweeps` `contacts#k` | {slots(Sweep.CONTACTS)} | {fmt(TARGET / slots(Sweep.CONTACTS))}"
        " | one Query a tick | when contacts sync is turned on or off |",
        f"| `sweeps` `mail#k` | {slots(Sweep.MAIL)} | {fmt(TARGET / slots(Sweep.MAIL))}"
        " | one Query a tick | when mail sync is turned on or off |",
        "| `polled_connections` `POLL#k` | 8 | 125,000 (if every account has a polled connection)"
        " | 8 Queries a tick | when a polled connection is stored |",
        f"| `pushes_due` `PUSHDUE#k` | 8 | a booking's mark until pushed | one Query a tick |"
        f" {fmt(per_second(10) * TARGET / 8)} writes/s per shard (5 bookings a day, set and cleared) |",
        "",
        "A GSI update happens only when an item's index key or projected attributes change, so the",
        "syncs' cursor writes never touch these partitions. The SQS message groups are one per user,",
        f"calendar or mailbox: {cost['sqs_message_groups'].get('SyncQueue', 0)} groups for"
        f" {cost['accounts']} accounts, the busiest with"
        f" {cost['sqs_busiest_group_share'].get('SyncQueue', 0.0):.1%} of the messages (one account's calendar).",
        "",
        "## The scheduler's fan-out, spread over time",
        "",
        "Every schedule fires every 5 minutes; each sweep reads only the slot due at that tick, so",
        "each tick carries the same share of a period's work (no top-of-the-hour spike):",
        "",
        "| sweep | period | slots | messages per tick per 1 M accounts |",
        "| --- | --- | ---: | ---: |",
    ]
    periods = {"connection_health": "6 h", "contacts_sync": "15 min", "mail_sync": "1 h", "calendar_poll": "5/15 min"}
    for job, share in fanout_per_tick().items():
        lines.append(f"| {job} | {periods[job]} | {TICKS_A_ROUND[job]} | {fmt(share * TARGET)} |")
    timeout = scheduler_timeout()
    capacity = SENDERS * 10 / BATCH_SECONDS * max(timeout - SCHEDULER_MARGIN_SECONDS, 0.0)
    lines += [
        "",
        f"One invocation (timeout {timeout:.0f} s) sends about {fmt(capacity)} messages in a tick at the",
        "assumed batch time. The test `tests/unit/test_sweeps.py` checks the slots spread 10,000 accounts",
        "within 25% of an even share.",
        "",
        "## Which limit comes first",
        "",
        "Accounts at which each limit is reached (default quotas), first first:",
        "",
        "| limit | capacity | per account | reached at | then |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for limit in found:
        lines.append(
            f"| {limit.name} | {fmt(limit.capacity)} {limit.unit} | {fmt(limit.per_account)} | "
            f"{accounts(limit.accounts)} | {limit.change} |"
        )
    first = found[0]
    lines += [
        "",
        f"**First limit: {first.name}, at about {accounts(first.accounts)} accounts.** {first.change[0].upper()}"
        f"{first.change[1:]}.",
        "",
        "| accounts | " + " | ".join(limit.name for limit in found[:5]) + " |",
        "| ---: | " + " | ".join("---:" for _ in found[:5]) + " |",
    ]
    for size in SIZES:
        cells = [f"{limit.per_account * size / limit.capacity:.0%}" for limit in found[:5]]
        lines.append(f"| {size:,} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "(Share of each of the five nearest limits in use at each size.)",
        "",
        "Sources of the quotas:",
        "",
    ]
    for name, entry in sorted(q["quotas"].items()):
        lines.append(f"- `{name}`: {entry['limit']:,} {entry['unit']} — {entry['source']} ({entry['checked']})")
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    OUT.write_text(render(cost_figures(), quotas()))
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
