"""Training jobs' bad input (named by field, before any work) and their HTTP routes, in-process (no Ray)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from policies.control import ControlPlane
from serve_apps.admin_token import admin_token_digest
from serve_apps.cli import main as gridshift
from serve_apps.http_api import create_app
from serve_apps.provider import Provider
from tenants.store import TenantStore
from tests.unit.gateway_app import ADMIN, PEAK_S, TOKEN, _context, gateway_app
from training.job import check_deadline
from training.spec import TrainingJobSpec, TrainingSpecError, check_storage, load_trainer
from training.submit import RayJobState

DIGITS = "example_pipelines.train_digits:train_digits"


def spec_data(tmp_path: Path, **overrides: object) -> dict[str, object]:
    data: dict[str, object] = {
        "job_id": "digits-1",
        "trainer": DIGITS,
        "steps": 100,
        "deadline": "2022-09-09T00:00:00Z",
        "region": "us-west-1",
        "storage_path": str(tmp_path / "store"),
    }
    data.update(overrides)
    return data


@pytest.mark.parametrize(
    ("trainer", "fragment"),
    [
        ("no_such_module_xyz:train", "cannot import module 'no_such_module_xyz'"),
        ("example_pipelines.train_digits:nope", "has no attribute 'nope'"),
        ("example_pipelines.train_digits:GLOBAL_BATCH", "is not callable"),
        ("example_pipelines.train_digits:batch_indices", "must take one argument, its config dict"),
    ],
)
def test_a_bad_trainer_is_refused_naming_it(trainer: str, fragment: str) -> None:
    with pytest.raises(TrainingSpecError, match=r"^trainer ") as raised:
        load_trainer(trainer)
    assert fragment in str(raised.value)


def test_an_unwritable_storage_path_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(TrainingSpecError, match=r"^storage_path .*not writable"):
        check_storage(str(blocker / "checkpoints"))
    check_storage(str(tmp_path / "fine"))
    assert not any((tmp_path / "fine").iterdir())  # the probe is gone


def test_a_deadline_too_close_for_the_work_is_refused(tmp_path: Path) -> None:
    fleet = _context().fleet
    spec = TrainingJobSpec.model_validate(spec_data(tmp_path, steps=2000, step_s=0.5))  # 1000 wall s of work
    deadline_s = spec.deadline.timestamp()
    check_deadline(spec, fleet, deadline_s - 1000 * fleet.signal_source.speedup)
    with pytest.raises(TrainingSpecError, match=r"^deadline: .* is too close"):
        check_deadline(spec, fleet, deadline_s - 900 * fleet.signal_source.speedup)


@pytest.mark.parametrize(
    ("field", "value"),
    [("flex_tier", 4), ("steps", 0), ("workers", 0), ("checkpoint_every_s", 0), ("trainer", "no colon")],
)
def test_spec_errors_name_the_field(tmp_path: Path, field: str, value: object) -> None:
    with pytest.raises(ValidationError) as raised:
        TrainingJobSpec.model_validate(spec_data(tmp_path, **{field: value}))
    assert raised.value.errors()[0]["loc"] == (field,)


def test_the_cli_refuses_bad_input_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["train", "submit", "--deadline", "2022-09-09T00:00:00Z", "--region", "us-west-1", "--steps", "10"]
    storage = ["--storage", str(tmp_path / "s")]
    assert gridshift([*base, *storage, "--trainer", "no_such_module_xyz:train"]) == 2
    assert "trainer 'no_such_module_xyz:train': cannot import" in capsys.readouterr().err
    assert gridshift([*base, *storage, "--trainer", DIGITS, "--flex-tier", "7"]) == 2
    assert "flex_tier" in capsys.readouterr().err
    assert gridshift([*base, *storage, "--trainer", DIGITS, "--region", "mars"]) == 2
    assert "--region: 'mars'" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert gridshift([*base, "--storage", str(tmp_path / "file" / "s"), "--trainer", DIGITS]) == 2
    assert "storage_path" in capsys.readouterr().err


class FakeLauncher:
    """Validates like the real one (trainer, storage, deadline) without Ray; records what it would submit."""

    def __init__(self) -> None:
        self.launched: list[TrainingJobSpec] = []

    async def launch(self, spec: TrainingJobSpec, now_s: float) -> None:
        load_trainer(spec.trainer)
        check_storage(spec.storage_path)
        check_deadline(spec, _context().fleet, now_s)
        self.launched.append(spec)

    async def ray_jobs(self) -> list[RayJobState]:
        # As the Jobs API's metadata holds them (strings): whose job, at which tier.
        return [
            RayJobState(spec.job_id, "PENDING", "", spec.region, tenant_id=spec.tenant_id, flex_tier=spec.flex_tier)
            for spec in self.launched
        ]


@pytest.fixture
def api() -> Iterator[tuple[TestClient, FakeLauncher, ControlPlane]]:
    _, core = gateway_app()
    launcher = FakeLauncher()
    provider = Provider(core.fleet, _context(), TenantStore.open("sqlite://"))
    app = create_app(core, admin_token_digest(TOKEN), provider, training_launcher=launcher)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, launcher, core.control.target  # type: ignore[attr-defined]


def test_training_jobs_over_http(api: tuple[TestClient, FakeLauncher, ControlPlane], tmp_path: Path) -> None:
    client, launcher, plane = api
    body = spec_data(tmp_path)
    assert client.post("/v1/training/jobs", json=body).status_code == 401
    answer = client.post("/v1/training/jobs", json=body, headers=ADMIN)
    assert answer.status_code == 202, answer.text
    assert [spec.job_id for spec in launcher.launched] == ["digits-1"]
    listed = client.get("/v1/training/jobs").json()["jobs"]
    assert listed == [
        {
            "job_id": "digits-1",
            "region": "us-west-1",
            "state": "pending",
            "reason": "",
            "tenant_id": None,
            "flex_tier": 1,
            "effects": [],
            "ray_status": "PENDING",
        }
    ]

    bad = client.post("/v1/training/jobs", json=spec_data(tmp_path, flex_tier=9), headers=ADMIN)
    assert bad.status_code == 422
    assert "flex_tier" in bad.json()["error"]["message"]
    unimportable = client.post("/v1/training/jobs", json=spec_data(tmp_path, trainer="nope_xyz:f"), headers=ADMIN)
    assert unimportable.status_code == 422
    assert unimportable.json()["error"]["param"] == "trainer"
    late = client.post("/v1/training/jobs", json=spec_data(tmp_path, deadline="2022-09-07T01:00:10Z"), headers=ADMIN)
    assert late.status_code == 422
    assert late.json()["error"]["param"] == "deadline"
    assert PEAK_S < 1_662_512_410  # the gateway's control clock is at the peak: ten seconds before that deadline

    assert client.post("/v1/training/jobs/ghost/pause", headers=ADMIN).status_code == 404
    assert client.post("/v1/training/jobs/digits-1/pause").status_code == 401
    from policies.training_gate import TrainingProgress

    report = TrainingProgress("digits-1", "us-west-1", "carbon", PEAK_S + 86_400, 1, "running", 0, 100, 0.05, 2, 1)
    plane.training_report(report)
    paused = client.post("/v1/training/jobs/digits-1/pause", headers=ADMIN)
    assert paused.status_code == 200
    assert paused.json()["requested"] == "pause"
    status = client.get("/v1/training/jobs/digits-1").json()
    assert status["paused_by_operator"]
    assert status["ray_status"] == "PENDING"
    assert status["steps_total"] == 100
    plane.training_report(
        TrainingProgress(
            "stubborn", "us-west-1", "carbon", PEAK_S + 86_400, 1, "running", 0, 100, 0.05, 2, 1, checkpointing=False
        )
    )
    refused = client.post("/v1/training/jobs/stubborn/pause", headers=ADMIN)
    assert refused.status_code == 409
    assert "checkpoint" in refused.json()["error"]["message"]
    assert client.post("/v1/training/jobs/digits-1/explode", headers=ADMIN).status_code == 404


def test_a_gateway_without_a_launcher_lists_but_does_not_submit(tmp_path: Path) -> None:
    app, _ = gateway_app()
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.post("/v1/training/jobs", json=spec_data(tmp_path), headers=ADMIN).status_code == 404
        assert client.get("/v1/training/jobs").json() == {"jobs": []}
