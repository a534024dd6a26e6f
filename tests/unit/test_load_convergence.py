"""The load test's judgement (bench/load.py, `make load`) on tiny worlds: it must name every
lost, duplicated, stale or misplaced item, and stay silent when the CRM agrees with Google and
with what was sent. The ten-minute run itself is not part of `make test`."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from bench.load import Expected, Observed, divergences, percentile

AT = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)


def span(hours: int) -> tuple[datetime, datetime]:
    return AT + timedelta(hours=hours), AT + timedelta(hours=hours, minutes=30)


def world() -> tuple[Expected, Observed]:
    """Given an account where everything converged: one event of the user's in each calendar
    (and one deleted in the linked one), one booking, two mails."""
    expected = Expected(
        "ada",
        linked={"g1": span(1)},
        linked_deleted={"g0"},
        conflict={"c1": span(2)},
        bookings={"a1": span(3)},
        mails=["m1", "m2"],
    )
    observed = Observed(
        google_linked={"g1": (span(1), None), "crma1": (span(3), "a1")},
        google_conflict={"c1": span(2)},
        mirror_linked={"g1": span(1), "crma1": span(3)},
        mirror_conflict={"c1": span(2)},
        appointments=[
            ("fromg1", "confirmed", "g1", span(1)),
            ("fromg0", "cancelled", "g0", span(0)),
            ("a1", "confirmed", "crma1", span(3)),
        ],
        mails=["m2", "m1"],
    )
    return expected, observed


def test_a_converged_account_has_no_divergence() -> None:
    expected, observed = world()
    assert divergences(expected, observed) == []


def test_a_lost_mirror_event_and_a_stale_one_are_named() -> None:
    expected, observed = world()
    del observed.mirror_conflict["c1"]
    observed.mirror_linked["gone"] = span(5)
    found = divergences(expected, observed)
    assert any("lost: conflict event c1" in d for d in found), found
    assert any("stale: linked event gone" in d for d in found), found


def test_a_move_the_crm_missed_is_named() -> None:
    expected, observed = world()
    observed.mirror_conflict["c1"] = span(7)
    observed.appointments[0] = ("fromg1", "confirmed", "g1", span(7))
    found = divergences(expected, observed)
    assert any("moved wrong: conflict event c1" in d for d in found), found
    assert any("moved wrong: appointment fromg1" in d for d in found), found


def test_a_duplicated_appointment_and_a_booking_twice_in_google_are_named() -> None:
    expected, observed = world()
    observed.appointments.append(("copy", "confirmed", "g1", span(1)))
    observed.google_linked["crmcopy"] = (span(3), "a1")
    observed.mirror_linked["crmcopy"] = span(3)
    found = divergences(expected, observed)
    assert any("2 confirmed appointments share the linked event g1" in d for d in found), found
    assert any("booking a1 is in Google 2 times" in d for d in found), found


def test_a_lost_booking_and_an_appointment_left_by_a_deletion_are_named() -> None:
    expected, observed = world()
    observed.appointments = [a for a in observed.appointments if a[0] != "a1"]
    observed.appointments[1] = ("fromg0", "confirmed", "g0", span(0))
    found = divergences(expected, observed)
    assert any("lost: booking a1 is missing in the CRM" in d for d in found), found
    assert any("deleted in Google still has a confirmed appointment" in d for d in found), found


def test_mail_logged_twice_or_never_is_named() -> None:
    expected, observed = world()
    observed.mails = ["m1", "m1"]
    found = divergences(expected, observed)
    assert any("'m1' logged 2 times" in d for d in found), found
    assert any("'m2' logged 0 times" in d for d in found), found


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(reversed(values), 50) == 50
    assert percentile(values, 95) == 95
    assert percentile(values, 100) == 100
    assert percentile([7.0], 95) == 7
    assert math.isnan(percentile([], 50))
