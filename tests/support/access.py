"""The ports' access to real adapters, for in-process tests that watch or break them."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from crmsync.app.connectors import Connectors
from crmsync.app.wiring import Graph
from crmsync.config import Settings
from crmsync.domain import StoredConnection
from crmsync.errors import ProviderError
from crmsync.ports.calendar import CalendarPort
from crmsync.ports.contacts import ContactsPort
from crmsync.providers.google.calendar import GoogleCalendar
from crmsync.sync.contact_sync import ContactSync


class WrappedAccess:
    """Opens each connection's calendar port as production does, then hands it to ``wrap``
    (a wrapper that loses answers, notes pages...)."""

    def __init__(self, connectors: Connectors, wrap: Callable[[CalendarPort], Any]) -> None:
        self._connectors = connectors
        self._wrap = wrap

    def calendar(self, stored: StoredConnection) -> CalendarPort:
        return self._wrap(self._connectors.calendar(stored))  # type: ignore[no-any-return]


def graph_with_page_size(settings: Settings, events_page_size: int) -> Graph:
    """The production graph, but Google's events.list answers ``events_page_size`` a page
    (to see paging at work without thousands of events)."""

    class SmallPages(Graph):
        def google_calendar(self, refresh_token: str, stored: StoredConnection) -> CalendarPort:
            return GoogleCalendar(
                settings.google,
                refresh_token,
                self._google_secret,
                tenant_id=stored.connection.tenant_id,
                events_page_size=events_page_size,
            )

    return SmallPages(settings)


class WrappedContactsAccess:
    """Opens each connection's contacts port as production does, then hands it to ``wrap``
    (a wrapper that loses answers, counts calls...)."""

    def __init__(self, connectors: Connectors, wrap: Callable[[ContactsPort], Any]) -> None:
        self._connectors = connectors
        self._wrap = wrap

    def contacts(self, stored: StoredConnection) -> ContactsPort:
        return self._wrap(self._connectors.contacts(stored))  # type: ignore[no-any-return]


class LostAnswers:
    """How many of the next writes to the provider lose their answer (the provider applied them)."""

    def __init__(self) -> None:
        self.left = 0


class LosesAnswers:
    """A port as the sync sees it when answers get lost: each method named in ``writes``
    reaches the provider, then, while ``lost.left`` says so, times out (a retryable
    ``ProviderError``); everything else is the port's own."""

    def __init__(self, port: Any, lost: LostAnswers, writes: Collection[str], api: str) -> None:
        self.port = port
        self.lost = lost
        self.writes = frozenset(writes)
        self.api = api

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.port, name)
        if name not in self.writes:
            return attribute

        def write(*args: Any, **kwargs: Any) -> Any:
            result = attribute(*args, **kwargs)
            if self.lost.left > 0:
                self.lost.left -= 1
                raise ProviderError(f"{self.api}.{name}: timed out", retryable=True)
            return result

        return write


def contact_sync_losing(graph: Graph, lost: LostAnswers, writes: Collection[str]) -> ContactSync:
    """The production contacts sync of ``graph``, its People port's ``writes`` losing their
    answers as ``lost`` says."""
    base = graph.contact_sync
    return ContactSync(
        mirror=graph.contact_mirror,
        contacts=graph.contact_store,
        candidates=graph.candidates,
        access=WrappedContactsAccess(graph.connectors, lambda port: LosesAnswers(port, lost, writes, "people")),
        read_phones=base._read_phones,
        group_name=base._group_name,
    )


class WorkerStopped(Exception):
    """The worker died mid-run (a Lambda timeout, a crash): not a provider error."""


class Stops:
    """After how many more mail port calls the worker running now stops (None: it does not),
    and whether the next ``send`` loses its answer after Gmail accepted it."""

    def __init__(self) -> None:
        self.after: int | None = None
        self.lose_send = False


class StoppingMail:
    """A mail port whose worker stops (``WorkerStopped``) before its call number
    ``stops.after`` (counted from when it was set), or right after Gmail accepted a ``send``
    when ``stops.lose_send`` says so; everything else is the port's own."""

    CALLS = frozenset({"profile", "list_messages", "get_messages", "changes_since", "watch", "stop", "send"})

    def __init__(self, port: Any, stops: Stops) -> None:
        self.port = port
        self.stops = stops

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.port, name)
        if name not in self.CALLS:
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.stops.after is not None:
                if self.stops.after <= 0:
                    self.stops.after = None
                    raise WorkerStopped(f"the worker stopped before mail.{name}")
                self.stops.after -= 1
            result = attribute(*args, **kwargs)
            if name == "send" and self.stops.lose_send:
                self.stops.lose_send = False
                raise WorkerStopped("Gmail accepted the send; its answer was lost")
            return result

        return call


class StoppableMailAccess:
    """Opens each connection's Gmail as production does (the real ``GoogleMail`` over the
    emulator), but with the retry backoff's pause recorded instead of slept, no quota pacer
    (it would sleep on the wall clock; the emulator's quota and faults refuse instead), and
    a worker that may stop mid-run."""

    def __init__(self, graph: Graph, stops: Stops) -> None:
        self._graph = graph
        self._stops = stops
        self.pauses: list[float] = []

    def mail(self, stored: StoredConnection) -> Any:
        from crmsync.providers.google.gmail import GoogleMail

        port = GoogleMail(
            self._graph.settings.google,
            self._graph.connectors.secret(stored),
            self._graph._google_secret,
            pause=self.pauses.append,
        )
        return StoppingMail(port, self._stops)


def mail_sync_stopping(graph: Graph, stops: Stops) -> Any:
    """The production mail sync engine of ``graph`` over :class:`StoppableMailAccess`."""
    from crmsync.mail.parse import parse_message
    from crmsync.sync.mail_sync import MailSyncEngine

    base = graph.mail_sync
    return MailSyncEngine(
        store=graph.mail_sync_store,
        connections=graph.connection_store,
        senders=graph.sender_addresses,
        access=StoppableMailAccess(graph, stops),
        contacts=graph.contact_store,
        log_store=graph.mail_log,
        bucket=graph.mail_bucket,
        parse=parse_message,
        publisher=graph.events,
        queue=graph.queue,
        logging_domain=graph.settings.logging_domain,
        topic=graph.settings.gmail_topic,
        never_log=graph.never_log,
        scope_granted=base._scope_granted,
        clock=graph.clock,
    )


def mail_send_stopping(graph: Graph, stops: Stops) -> Any:
    """The production CRM send of ``graph`` over :class:`StoppableMailAccess`."""
    from crmsync.logic.mail_send import MailSend

    return MailSend(
        contacts=graph.contact_store,
        connections=graph.connection_store,
        sync=graph.mail_sync_store,
        access=StoppableMailAccess(graph, stops),
        log_store=graph.mail_log,
        bucket=graph.mail_bucket,
        publisher=graph.events,
        message_id_domain=graph.settings.logging_domain,
        scope_granted=graph.mail_send._scope_granted,
        clock=graph.clock,
    )
