"""Example trainer: an MLP classifier of scikit-learn's bundled handwritten digits (no download), trained with Ray
Train (DDP), resumable from its checkpoints and deterministic in (seed, step), so a run paused, shrunk and resumed
any number of times ends with the same model as an uninterrupted one.

Submit it with `gridshift train submit --trainer example_pipelines.train_digits:train_digits --steps 3000 ...`.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import numpy as np
import numpy.typing as npt
import ray.train
import torch
import torch.nn.functional as F
from ray.train.torch import prepare_model
from sklearn.datasets import load_digits

from training.loop import StepBoundary

GLOBAL_BATCH = 96
"""Samples per step over all workers. 96 divides by 1, 2, 3, 4, 6 and 8 workers: each takes an equal share and DDP
averages their gradients, so a step is the same whatever the worker count (up to float rounding) and a shrunk run
trains the same model."""
TEST_SHARE = 0.2
STATE_FILE = "state.pt"


def digits(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(train x, train y, test x, test y): the 1,797 8x8 digits scaled to [0, 1], split 80/20 by the seed."""
    features, labels = load_digits(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(labels))
    cut = int(len(labels) * (1 - TEST_SHARE))
    x = torch.tensor(features[order] / 16.0, dtype=torch.float32)
    y = torch.tensor(labels[order], dtype=torch.int64)
    return x[:cut], y[:cut], x[cut:], y[cut:]


def batch_indices(seed: int, step: int, train_rows: int) -> npt.NDArray[np.int64]:
    """The step's global batch: a function of (seed, step) alone, so a resumed run draws what an uninterrupted one
    would have (a generator carried across steps would need its state checkpointed too)."""
    return np.random.default_rng([seed, step]).choice(train_rows, GLOBAL_BATCH, replace=False).astype(np.int64)


def build_model(seed: int, hidden: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(64, hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, 10),
    )


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(dim=1) == y).float().mean())


def train_digits(config: dict[str, Any]) -> None:
    """The Ray Train loop (every worker runs it). Config: steps, seed (0), hidden (256), lr (0.05)."""
    seed, hidden, lr = int(config.get("seed", 0)), int(config.get("hidden", 256)), float(config.get("lr", 0.05))
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    if GLOBAL_BATCH % world:
        raise ValueError(f"{world} workers do not divide the global batch of {GLOBAL_BATCH}")
    boundary = StepBoundary(config)
    train_x, train_y, test_x, test_y = digits(seed)
    model = build_model(seed, hidden)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    start = 0
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            state = torch.load(os.path.join(folder, STATE_FILE), weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start = int(state["step"])
    ddp = prepare_model(model, parallel_strategy_kwargs={"broadcast_buffers": False}) if world > 1 else model
    for step in range(start, int(config["steps"])):
        mine = batch_indices(seed, step, len(train_y))[rank::world]
        optimizer.zero_grad()
        loss = F.cross_entropy(ddp(train_x[mine]), train_y[mine])
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        action = boundary.after_step(step + 1)
        if action.checkpoint:
            _checkpoint(model, optimizer, step + 1, float(loss), test_x, test_y, rank)
        if action.stop:
            return


def _checkpoint(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    steps_done: int,
    loss: float,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    rank: int,
) -> None:
    """Every worker reports (Ray Train's barrier); rank 0 alone writes the state (the replicas are identical)."""
    metrics = {"step": steps_done, "loss": loss, "test_accuracy": accuracy(model, test_x, test_y)}
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = None
        if rank == 0:
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": steps_done}
            torch.save(state, os.path.join(folder, STATE_FILE))
            checkpoint = ray.train.Checkpoint.from_directory(folder)
        ray.train.report(metrics, checkpoint=checkpoint)


def load_state(checkpoint_path: str) -> dict[str, Any]:
    """A checkpoint's saved state (model parameters, optimizer, step): to compare runs or serve the model."""
    state: dict[str, Any] = torch.load(os.path.join(checkpoint_path, STATE_FILE), weights_only=True)
    return state
