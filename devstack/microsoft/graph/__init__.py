"""Microsoft Graph v1.0 calendar resources for the Microsoft emulator: a WSGI app over an
in-memory state, with delta rounds, faults on demand, the Outlook user's own edits, and change
notifications (subscriptions, webhook delivery, lifecycle events)."""

from devstack.microsoft.graph.app import GraphApp
from devstack.microsoft.graph.faults import Fault
from devstack.microsoft.graph.state import GraphState

__all__ = ["Fault", "GraphApp", "GraphState"]
