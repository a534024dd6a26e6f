"""The capacity model's arithmetic (bench/scale.py): limits reached at capacity / per-account
load, Gmail units by method, the sweeps' fan-out per tick from their slots."""

from __future__ import annotations

import math

from bench import scale


def test_a_limit_is_reached_at_its_capacity_over_one_account_s_share() -> None:
    assert scale.Limit("x", 1000, "u", 0.5, "").accounts == 2000
    assert math.isinf(scale.Limit("x", 1000, "u", 0.0, "").accounts)


def test_gmail_units_are_counted_by_method() -> None:
    cost = {
        "requests": {
            "google": {
                "gmail.users.history.list": 10,
                "gmail.users.messages.get": 2,
                "gmail.users.messages.send": 1,
                "calendar.events.list": 7,
                "people.people.connections.list": 3,
            }
        }
    }
    rates = scale.provider_rates(cost, scale.quotas())
    assert rates["gmail_units"] == 10 * 2 + 2 * 5 + 1 * 100
    assert (rates["calendar"], rates["people"]) == (7, 3)


def test_the_fan_out_per_tick_follows_the_slots() -> None:
    per_tick = scale.fanout_per_tick()
    assert per_tick["contacts_sync"] == 1 / 3
    assert per_tick["mail_sync"] == 1 / 12
    assert per_tick["connection_health"] == scale.PROFILE["connections"] / 72


def test_every_quota_names_its_source_and_when_it_was_checked() -> None:
    for name, entry in scale.quotas()["quotas"].items():
        assert entry["limit"] > 0, name
        assert entry["source"].startswith("https://"), name
        assert entry["checked"], name


def test_put_events_are_counted_by_entries_once() -> None:
    assert scale._put_events_entries({"PutEvents": 4, "PutEvents entries": 9}) == 9
    assert scale._put_events_entries({"PutEvents": 4}) == 4
