"""Every kind of item of the connections table is bound to it by one assignment."""

from __future__ import annotations

import crmsync.models as models
from crmsync.models import ConnectionsTableItem, OAuthStateItem, bind_tables


def test_every_connections_table_model_shares_the_one_meta() -> None:
    kinds = [
        m
        for m in (getattr(models, name) for name in models.__all__)  # loaded on first use: all of them
        if isinstance(m, type) and issubclass(m, ConnectionsTableItem) and m is not ConnectionsTableItem
    ]
    assert len(kinds) >= 15
    bind_tables(connections_table="connections-x", oauth_states_table="states-x")
    assert {m.Meta.table_name for m in kinds} == {"connections-x"}
    assert all(m.Meta is ConnectionsTableItem.Meta for m in kinds)  # none declares its own
    assert OAuthStateItem.Meta.table_name == "states-x"
