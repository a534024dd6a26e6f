"""In-memory fakes of the provider ports, for fast tests of logic and sync.

Each fake behaves like the real adapter: ``tests/contract`` runs one suite per port over
both (the Google adapter against the emulator, and the fake), so a difference fails there.
Each also has test controls (acting as the user in the provider's app, failing the next
call, counting calls) that the real adapter does not.
"""

from tests.fakes.accounts import FakeAccountAccess, FakeCredential, FakeOAuth
from tests.fakes.calendar import FakeCalendar, FakeCalendarAccess

__all__ = ["FakeAccountAccess", "FakeCalendar", "FakeCalendarAccess", "FakeCredential", "FakeOAuth"]
