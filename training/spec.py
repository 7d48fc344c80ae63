"""A training job's spec: what trains (the team's Ray Train loop), how big, by when, where, and where its checkpoints
go; and the checks that refuse a bad one before any work, naming the field."""

from __future__ import annotations

import importlib
import inspect
import uuid
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, PositiveFloat, PositiveInt

from fleet.base import UtcDatetime
from fleet.errors import GridshiftError
from fleet.tenants import MAX_TIER

TRAINER_PATTERN = r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$"


class TrainingSpecError(GridshiftError):
    """A training job cannot start: bad trainer, storage, size or deadline. The message names the field and why."""


class TrainingJobSpec(BaseModel):
    """A submitted Ray Train job."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job_id: str = Field(
        min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$", description="Job id; also its Ray Train run name."
    )
    trainer: str = Field(
        pattern=TRAINER_PATTERN,
        description="'module:function': the Ray Train loop, called on every worker with its config (a dict).",
    )
    steps: PositiveInt = Field(
        le=10_000_000, description="Optimisation steps the job runs in all; given to the loop as config['steps']."
    )
    config: dict[str, JsonValue] = Field(
        default_factory=dict, description="More of the loop's config (JSON values), e.g. seed, learning rate."
    )
    deadline: UtcDatetime = Field(description="When every step must be done (UTC, on the control clock).")
    region: str = Field(min_length=1, description="Region whose grid the job follows.")
    signal: Literal["carbon", "price", "headroom"] = Field("carbon", description="What the planner optimises.")
    flex_tier: int = Field(
        1,
        ge=0,
        le=MAX_TIER,
        description="Flexibility tier (docs/tenants.md): 0 never paused or slowed by the grid; 1 up to 10 % slower; "
        "2 up to 25 %; 3 up to 50 % and paused until its deadline. Submitted with a tenant key and not given: the "
        "key's default tier.",
    )
    workers: PositiveInt = Field(2, le=1024, description="Ray Train workers at full size (the grid may run fewer).")
    threads_per_worker: PositiveInt = Field(1, le=256, description="torch threads per worker at full size.")
    worker_cpus: PositiveFloat = Field(
        0.25, le=64.0, description="CPUs each worker reserves (fractional on a small host that also serves)."
    )
    use_gpu: bool = Field(False, description="One GPU per worker (backend nccl); CPU workers use gloo.")
    checkpoint_every_s: PositiveFloat = Field(
        10.0,
        le=86_400.0,
        description="How often the loop is asked for a checkpoint, wall s: the most work a crash can lose.",
    )
    storage_path: str = Field(
        min_length=1,
        description="Where Ray Train keeps the run and its checkpoints: a local path (one shared by every node, "
        "e.g. NFS, on a cluster) or a URI pyarrow has a filesystem for (s3://, gs://).",
    )
    step_s: PositiveFloat = Field(0.05, description="Initial estimate of wall seconds per step, until measured.")
    tenant_id: str | None = Field(
        None, max_length=32, description="Set by the gateway from the submitting tenant key; not sent by clients."
    )


def new_job_id() -> str:
    return uuid.uuid4().hex[:12]


TrainLoop = Callable[[dict[str, Any]], Any]


def load_trainer(import_path: str) -> TrainLoop:
    """Resolve 'module:function' to the loop; the errors name the field (`trainer`) and each way it can be wrong."""
    module_name, _, attribute = import_path.partition(":")
    if not module_name or not attribute:
        raise TrainingSpecError(f"trainer {import_path!r}: expected 'module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise TrainingSpecError(f"trainer {import_path!r}: cannot import module {module_name!r}: {error}") from None
    function = getattr(module, attribute, None)
    if function is None:
        raise TrainingSpecError(f"trainer {import_path!r}: module {module_name!r} has no attribute {attribute!r}")
    if not callable(function):
        raise TrainingSpecError(f"trainer {import_path!r}: {attribute!r} is not callable")
    try:
        inspect.signature(function).bind({})
    except TypeError:
        raise TrainingSpecError(
            f"trainer {import_path!r}: the loop must take one argument, its config dict (Ray Train's "
            "train_loop_per_worker(config))"
        ) from None
    except ValueError:
        pass  # a builtin without a signature: Ray Train will say
    return function  # type: ignore[no-any-return]


def check_storage(storage_path: str) -> None:
    """The storage path must be writable: a probe file is written and removed through pyarrow's filesystem for it,
    the same one Ray Train writes checkpoints through."""
    import pyarrow.fs

    try:
        filesystem, root = pyarrow.fs.FileSystem.from_uri(storage_path)
    except (pyarrow.ArrowInvalid, ValueError):
        filesystem, root = pyarrow.fs.LocalFileSystem(), storage_path
    probe = f"{root.rstrip('/')}/.gridshift-write-probe-{uuid.uuid4().hex[:8]}"
    try:
        filesystem.create_dir(root, recursive=True)
        with filesystem.open_output_stream(probe) as stream:
            stream.write(b"gridshift")
        filesystem.delete_file(probe)
    except (OSError, pyarrow.ArrowException) as error:
        raise TrainingSpecError(f"storage_path {storage_path!r}: not writable ({error})") from None


def validate_spec(spec: TrainingJobSpec) -> None:
    """Fail fast, before any Ray work, on what can be checked up front: the trainer imports and takes a config, the
    storage path is writable. (A deadline too close for the work is the control plane's check: it knows the clock.)"""
    load_trainer(spec.trainer)
    check_storage(spec.storage_path)
