"""The cost model's arithmetic (bench/cost.py): daily quantities priced per month with the
units of bench/aws_prices.json."""

from __future__ import annotations

import pytest

from bench.cost import DAYS_PER_MONTH, load_prices, monthly_lines, price_of


def test_each_price_is_per_its_own_unit() -> None:
    prices = load_prices()
    assert price_of(prices, "dynamodb_read_request_unit") == pytest.approx(0.125e-6)
    assert price_of(prices, "dynamodb_write_request_unit") == pytest.approx(0.625e-6)
    assert price_of(prices, "kms_request") == pytest.approx(3e-6)
    assert price_of(prices, "lambda_request") == pytest.approx(0.2e-6)
    assert price_of(prices, "s3_put_request") == pytest.approx(5e-6)
    for name, entry in prices["prices"].items():
        assert entry["unit"], name
        assert entry["source"].startswith("https://aws.amazon.com/"), name
        assert entry["checked"], name


def test_a_day_of_usage_is_priced_for_a_30_day_month_line_by_line() -> None:
    # Given one day's quantities
    lines = monthly_lines(
        requests={
            "kms": {"Decrypt": 10_000},
            "sqs": {"SendMessage": 1_000_000},
            "events": {"PutEvents": 100_000, "PutEvents entries": 1_000_000},  # billed per entry
            "google": {"calendar.events.list": 5_000_000},  # no AWS price: no line
        },
        units={"ConnectionsTable": {"rru": 1_000_000, "wru": 1_000_000}},
        gb_seconds={"SyncWorkerFunction": 1000.0},
        invocations={"SyncWorkerFunction": 1_000_000},
        log_bytes={"SyncWorkerFunction": 1e9},
        prices=load_prices(),
    )

    # Then each line is its month's dollars, biggest first
    assert DAYS_PER_MONTH == 30
    expected = {
        "DynamoDB writes (ConnectionsTable)": 30 * 0.625,
        "EventBridge PutEvents entries": 30 * 1.0,
        "CloudWatch Logs ingestion (SyncWorkerFunction)": 30 * 0.50,
        "SQS SendMessage": 30 * 0.50,
        "Lambda requests (SyncWorkerFunction)": 30 * 0.20,
        "DynamoDB reads (ConnectionsTable)": 30 * 0.125,
        "KMS Decrypt": 30 * 0.03,
        "Lambda compute (SyncWorkerFunction)": 30 * 1000 * 0.0000133334,
        "CloudWatch Logs storage (SyncWorkerFunction)": 30 * 0.15 * 0.03,
    }
    assert lines == pytest.approx(expected)
    assert list(lines.values()) == sorted(lines.values(), reverse=True)
