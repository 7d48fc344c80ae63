"""The live terminal views: the `gridshift up` panel from a control-history sample, drawn in place on a terminal and
as plain text blocks elsewhere."""

from __future__ import annotations

import io
from typing import Any

import pytest

from fleet.clock import FixedClock
from fleet.config import FleetConfig
from fleet.events import DREvent
from fleet.loaders import load_fleet
from grid.context import load_context
from policies.calibration import load_calibration
from policies.control import ControlPlane
from policies.control_history import operator_jobs
from policies.ladder import decide_fleet
from serve_apps.cli.fleet_panel import fleet_panel
from serve_apps.cli.live_view import LiveView, plain_text

PEAK_S = 1_662_512_400


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _panel_text() -> str:
    context = load_context(load_fleet())
    plane = ControlPlane(context, FixedClock(PEAK_S), FixedClock(10.0))
    calibration = load_calibration()
    plane.publish_policy(decide_fleet(plane.policy_inputs(), {}, plane.fleet, calibration), calibration)
    event = plane.post_event(DREvent(region="us-west-2", level=3, start=plane.now()))
    (sample,) = plane.history(limit=1)
    batch = [{"job_id": "j1", "region": "us-east-1", "state": "paused", "rows_done": 250, "rows_total": 1000}]
    training = [{"job_id": "t1", "region": "us-west-2", "state": "running", "steps_done": 5, "steps_total": 10}]
    text = plain_text(fleet_panel(context.fleet, sample, operator_jobs(batch, training)))
    assert event.event_id in text
    return text


def test_the_up_panel_shows_regions_rungs_power_split_events_and_jobs() -> None:
    text = _panel_text()
    lines = text.splitlines()
    assert "trace time 2022-09-07T01:00:00Z" in lines[0]
    assert "policy fresh" in lines[0]
    for region in ("us-east-1", "us-east-2", "us-west-1", "us-west-2"):
        assert any(line.startswith(region) for line in lines), region
    west1 = next(line for line in lines if line.startswith("us-west-1"))
    assert "3 emergency" in west1
    assert " / " in west1  # grid against baseline kW
    west2 = next(line for line in lines if line.startswith("us-west-2"))
    assert "(DR 3)" in west2
    # Both Californian and Oregon regions under stress 3: tolerant work from the west goes east.
    split = next(line for line in lines if line.startswith("tolerant from us-west-1"))
    assert "us-west-2" not in split.split("->")[1]
    assert "DR events: us-west-2 level 3" in text
    assert "job j1 batch in us-east-1: paused 25% of 1,000 rows" in text
    assert "job t1 training in us-west-2: running 50% of 10 steps" in text
    assert "\x1b[" not in text  # plain: no control codes


def test_off_a_terminal_each_refresh_is_a_plain_block() -> None:
    sink = io.StringIO()
    with LiveView(sink) as view:
        assert view.tty is False
        view.show("first")
        view.show("second")
    assert sink.getvalue() == "first\nsecond\n"


def test_on_a_terminal_the_panel_is_redrawn_in_place() -> None:
    sink = Terminal()
    with LiveView(sink) as view:
        assert view.tty is True
        view.show("first frame")
        view.show("second frame")
    out = sink.getvalue()
    assert "first frame" in out
    assert "second frame" in out
    # rich moves the cursor back up over the previous frame instead of scrolling a new block.
    assert "\x1b[" in out
    assert out.count("\n") < 6


def test_up_turns_the_dashboard_off_and_logs_json_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    from serve_apps import cli
    from serve_apps.cli import up

    calls: list[dict[str, Any]] = []

    def run_up(fleet: FleetConfig, **options: Any) -> int:
        calls.append({"port": fleet.gateway.port, **options})
        return 0

    monkeypatch.setattr(up, "run_up", run_up)
    assert cli.main(["up", "--port", "18999"]) == 0
    assert cli.main(["up", "--no-dashboard", "--log-format", "json"]) == 0
    assert [(c["port"], c["dashboard"], c["log_encoding"]) for c in calls] == [
        (18999, True, "TEXT"),
        (8000, False, "JSON"),
    ]
