"""What logic, sync and the DAL know of providers: one port per kind of provider service.

- :mod:`.calendar` — calendars and their events (Google Calendar; later CalDAV and Graph);
- :mod:`.contacts` — the account's contacts (Google People);
- :mod:`.mail` — the account's mailbox (Gmail);
- :mod:`.accounts` — connecting an account and checking or revoking its credential;
- :mod:`.errors` — the neutral errors every adapter raises.

Each port is a Protocol with plain-data models. An adapter per provider implements it
(``crmsync.providers.<name>``); an in-memory fake implements it for the fast tests; one
contract suite per port runs over both (``tests/contract``). Only the composition root
(:mod:`crmsync.app.wiring`) names a concrete adapter.
"""
