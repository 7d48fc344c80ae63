"""The control actor's class, in-process (no Ray): a live fleet starts the signal poller in a background thread,
and the control state it serves carries the sources' health and the polled values."""

from __future__ import annotations

import copy
import pickle
import time
from typing import Any

import pytest
import yaml

from fleet.loaders import packaged_data
from policies.actors.control import ControlActor
from tests.data.sources.fake_provider import EIA_KEY, provider_in_thread


def test_a_live_control_actor_polls_in_the_background_and_serves_the_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EIA_API_KEY", EIA_KEY)
    with provider_in_thread() as fake:
        data: dict[str, Any] = copy.deepcopy(yaml.safe_load(packaged_data("fleet_default.yaml").read_text()))
        data["signal_source"] = {
            "kind": "live",
            "max_reading_age_s": 20 * 365 * 86_400,  # the recording is from 2022
            "sources": [
                {
                    "provider": "eia",
                    "base_url": fake.url,
                    "zones": {"CISO": "CISO", "BPAT": "BPAT"},
                    "series": ["D"],
                    "http": {"min_interval_s": 0.0, "max_attempts": 1},
                }
            ],
        }
        actor = ControlActor(data)
        try:
            deadline = time.monotonic() + 20.0
            state = actor.state()
            while (state is None or state.signals is None or not state.signals.sources[0].polls) and (
                time.monotonic() < deadline
            ):
                time.sleep(0.05)
                state = actor.state()
        finally:
            poller = actor._signal_poller
            assert poller is not None
            poller.stop(timeout_s=10.0)
        assert not poller.alive
    assert state is not None
    assert state.signals is not None
    (health,) = state.signals.sources
    assert (health.name, health.state) == ("eia", "up")
    west_1 = next(r for r in state.snapshot.regions if r.config.name == "us-west-1")
    assert west_1.signals.demand_mw is not None
    assert west_1.signals.demand_mw.value == 51_104.0
    # Read on the wall clock, a 2022 value is years old: the formula no longer trusts it.
    assert west_1.assessment.stale
    assert fake.count("/v2/electricity/rto/region-data/data/") == 1
    # The state crosses process boundaries (actor -> gateway) by pickling: the health must survive it intact.
    assert pickle.loads(pickle.dumps(state)).signals == state.signals
