"""The functions' metrics (crmsync.metrics) write the Embedded Metric Format document
powertools' Metrics writes, so dashboards and alarms read every function alike."""

from __future__ import annotations

import io
import json
import warnings
from contextlib import redirect_stdout, suppress
from typing import Any

import pytest
from aws_lambda_powertools import Metrics as PowertoolsMetrics
from aws_lambda_powertools.metrics import MetricUnit as PowertoolsUnit
from hypothesis import given, settings
from hypothesis import strategies as st

from crmsync.metrics import MAX_METRICS, MAX_VALUES, Metrics, MetricUnit, clear_metrics

NAMES = st.sampled_from(["PushesSwept", "MailSyncLogged", "MailSyncLag", "ConnectionsChecked"])
UNITS = st.sampled_from([MetricUnit.Count, MetricUnit.Seconds])
VALUES = st.one_of(st.integers(0, 10_000), st.floats(0, 1e6, allow_nan=False))


def _documents(output: str) -> list[dict[str, Any]]:
    documents = [json.loads(line) for line in output.splitlines() if line.startswith('{"_aws"')]
    for document in documents:
        document["_aws"].pop("Timestamp")
    return documents


def _run(metrics: Any, unit_of: Any, added: list[tuple[str, MetricUnit, float]], fail: bool) -> list[dict[str, Any]]:
    @metrics.log_metrics
    def handler(event: Any, context: Any) -> None:
        for name, unit, value in added:
            metrics.add_metric(name=name, unit=unit_of(unit), value=value)
        if fail:
            raise RuntimeError("the invocation failed")

    out = io.StringIO()
    with redirect_stdout(out), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # powertools warns when nothing was added
        with suppress(RuntimeError):
            handler({}, None)
    return _documents(out.getvalue())


@settings(max_examples=60, deadline=None)
@given(
    added=st.lists(st.tuples(NAMES, UNITS, VALUES), max_size=12, unique_by=lambda a: a[0]).flatmap(
        lambda firsts: st.lists(st.sampled_from(firsts), max_size=30) if firsts else st.just([])
    ),
    fail=st.booleans(),
)
def test_the_document_is_powertools(added: list[tuple[str, MetricUnit, float]], fail: bool) -> None:
    """Given the same metrics added in an invocation (each name with one unit, as the code
    adds them), the same document is written when it ends, returned or raised; nothing when
    nothing was added."""
    clear_metrics()
    ours = _run(Metrics(namespace="crmsync", service="sync_worker"), lambda u: u, added, fail)
    theirs_metrics = PowertoolsMetrics(namespace="crmsync", service="sync_worker")
    theirs_metrics.clear_metrics()
    theirs = _run(theirs_metrics, lambda u: PowertoolsUnit(u.value), added, fail)
    assert ours == theirs
    assert bool(ours) == bool(added)


def test_instances_share_the_functions_metric_set() -> None:
    """A use case's ``Metrics()`` adds to what the handler's instance writes."""
    clear_metrics()
    handler_metrics = Metrics(namespace="crmsync", service="api")

    @handler_metrics.log_metrics
    def handler(event: Any, context: Any) -> None:
        Metrics().add_metric(name="PushesSwept", unit=MetricUnit.Count, value=2)

    out = io.StringIO()
    with redirect_stdout(out):
        handler({}, None)
    (document,) = _documents(out.getvalue())
    assert document["PushesSwept"] == [2.0]
    assert document["service"] == "api"
    assert handler_metrics.serialize_metric_set() is None  # written, then forgotten


def test_a_document_holds_at_most_cloudwatchs_hundred_metrics() -> None:
    clear_metrics()
    metrics = Metrics(namespace="crmsync", service="scheduler")
    out = io.StringIO()
    with redirect_stdout(out):
        for i in range(MAX_METRICS + 1):
            metrics.add_metric(name=f"M{i}", unit=MetricUnit.Count, value=1)
        metrics.flush_metrics()
    sizes = [len(d["_aws"]["CloudWatchMetrics"][0]["Metrics"]) for d in _documents(out.getvalue())]
    assert sizes == [MAX_METRICS, 1]


def test_a_metric_holds_at_most_a_hundred_values_a_document() -> None:
    clear_metrics()
    metrics = Metrics(namespace="crmsync", service="sync_worker")
    out = io.StringIO()
    with redirect_stdout(out):
        for _ in range(MAX_VALUES + 1):
            metrics.add_metric(name="MailSyncLogged", unit=MetricUnit.Count, value=1)
        metrics.flush_metrics()
    assert [len(d["MailSyncLogged"]) for d in _documents(out.getvalue())] == [MAX_VALUES, 1]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "3", True, None])
def test_a_value_that_is_not_a_finite_number_is_refused(value: Any) -> None:
    with pytest.raises(ValueError, match="not a finite number"):
        Metrics().add_metric(name="X", unit=MetricUnit.Count, value=value)
    assert Metrics().serialize_metric_set() is None or "X" not in (Metrics().serialize_metric_set() or {})
