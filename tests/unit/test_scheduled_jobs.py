"""Every schedule of template.yaml names a job the scheduler runs, and an unknown one is refused."""

from __future__ import annotations

import json
from pathlib import Path

from crmsync.app.jobs import JOBS, run_job
from crmsync.metrics import Metrics
from devstack.template import LocalContext, load_template

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = {"JwtIssuer": "http://127.0.0.1:3000/.devstack/issuer", "GoogleClientId": "client-1"}


def test_every_schedule_names_a_job() -> None:
    resolved = load_template(ROOT / "template.yaml").resolve(REQUIRED, LocalContext())
    named = {json.loads(s.input or "{}").get("job") for s in resolved.schedules}
    assert named == {"connection_health", "push_sweep", "contacts_sync", "mail_sync", "calendar_poll"}
    assert named <= set(JOBS)
    assert {s.function for s in resolved.schedules} == {"SchedulerFunction"}


def test_an_unknown_job_is_refused_not_run() -> None:
    assert run_job({"job": "nope"}, Metrics(namespace="test")) == {"job": "nope", "error": "unknown job"}
