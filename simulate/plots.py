"""Report folders: the plots (matplotlib, off-screen) and one HTML page that puts them and the headline figures
together, for a simulation, a mix sweep or a curtailment study."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display, whatever the environment says
import matplotlib.pyplot as plt
import numpy as np

from simulate.engine import LEVER_ORDER, SimulationRun
from simulate.results import EPISODE_STRESS


def _save(figure: Any, folder: Path, name: str) -> str:
    figure.tight_layout()
    figure.savefig(folder / name, dpi=110)
    plt.close(figure)
    return name


def _page(folder: Path, title: str, summary: dict[str, Any], images: Sequence[str]) -> Path:
    figures = "\n".join(f'<figure><img src="{html.escape(i)}" alt="{html.escape(i)}"></figure>' for i in images)
    text = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}img{max-width:100%}"
        "pre{background:#f4f4f4;padding:8px;overflow:auto}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><h2>Headline figures</h2><pre>{html.escape(json.dumps(summary, indent=2))}</pre>"
        f"{figures}</body></html>"
    )
    path = folder / "index.html"
    path.write_text(text, encoding="utf-8")
    return path


def simulation_report(folder: Path, run: SimulationRun, baseline: SimulationRun, body: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "simulation.json").write_text(json.dumps(body, indent=2), encoding="utf-8")
    hours = np.arange(len(run.times_s))
    images = []
    figure, axes = plt.subplots(len(run.regions) + 1, 1, figsize=(11, 2.2 * (len(run.regions) + 1)), sharex=True)
    no_stress = np.zeros(len(hours))
    rows = [("fleet", run.series["grid_kw"].sum(axis=0), baseline.series["grid_kw"].sum(axis=0), no_stress)]
    rows += [
        (name, run.series["grid_kw"][i], baseline.series["grid_kw"][i], run.series["stress"][i])
        for i, name in enumerate(run.regions)
    ]
    for axis, (name, grid, base, stress) in zip(np.atleast_1d(axes), rows, strict=True):
        axis.plot(hours, base / 1000.0, color="grey", lw=1, label="no-control baseline")
        axis.plot(hours, grid / 1000.0, color="tab:blue", lw=1, label="gridshift")
        if stress.any():
            axis.fill_between(
                hours,
                0,
                1,
                where=stress >= EPISODE_STRESS,
                color="tab:red",
                alpha=0.15,
                transform=axis.get_xaxis_transform(),
                label="stress >= 2",
            )
        axis.set_ylabel(f"{name}\nMW")
    np.atleast_1d(axes)[0].legend(loc="upper right", fontsize=8)
    np.atleast_1d(axes)[-1].set_xlabel(f"hours from {body['from']}")
    images.append(_save(figure, folder, "draw_vs_baseline.png"))

    figure, axis = plt.subplots(figsize=(11, 3.5))
    stack = [run.flexible_kw[lever].sum(axis=0) / 1000.0 for lever in LEVER_ORDER]
    axis.stackplot(hours, stack, labels=[lever.value for lever in LEVER_ORDER], alpha=0.8)
    axis.set_ylabel("flexible MW (fleet)")
    axis.set_xlabel(f"hours from {body['from']}")
    axis.legend(loc="upper right", fontsize=8)
    images.append(_save(figure, folder, "flexible_mw_by_lever.png"))

    figure, axis = plt.subplots(figsize=(5 + 0.3 * len(run.regions), 4 + 0.3 * len(run.regions)))
    share = run.moved_cpu_h / max(float(run.moved_cpu_h.sum()), 1e-12)
    image = axis.imshow(share, cmap="Blues")
    axis.set_xticks(range(len(run.regions)), run.regions, rotation=90, fontsize=7)
    axis.set_yticks(range(len(run.regions)), run.regions, fontsize=7)
    axis.set_xlabel("served in")
    axis.set_ylabel("tolerant work from")
    figure.colorbar(image, label="share of all moved tolerant work")
    images.append(_save(figure, folder, "shift_map.png"))
    return _page(folder, f"gridshift simulate {body['from']} .. {body['to']}", body["fleet"], images)


def sweep_report(folder: Path, body: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sweep.json").write_text(json.dumps(body, indent=2), encoding="utf-8")
    rows = body["rows"]
    x = [row["flexible_share"] for row in rows]
    figure, left = plt.subplots(figsize=(8, 4))
    left.plot(x, [row["flexible_fraction"] for row in rows], "o-", label="flexible fraction of draw")
    left.set_xlabel("flexible share of the mix (1 - real-time)")
    left.set_ylabel("flexible kW / grid kW")
    right = left.twinx()
    right.plot(
        x,
        [row["mean_shed_mw_in_stress"] or 0.0 for row in rows],
        "s--",
        color="tab:red",
        label="sustained shed in stress, MW",
    )
    right.set_ylabel("mean shed in stress hours, MW")
    figure.legend(loc="upper left", fontsize=8)
    images = [_save(figure, folder, "sweep.png")]
    return _page(folder, "gridshift simulate sweep", {"rows": rows}, images)


def study_report(folder: Path, body: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "curtailment_study.json").write_text(json.dumps(body, indent=2), encoding="utf-8")
    zones = [zone["zone"] for zone in body["zones"]]
    rates = body["rates_pct"]
    figure, axis = plt.subplots(figsize=(12, 4.5))
    width = 0.8 / max(len(rates), 1)
    for k, rate in enumerate(rates):
        values = [
            next(r["headroom_mw"] for r in zone["results"] if r["rate_pct"] == rate) / 1000.0 for zone in body["zones"]
        ]
        axis.bar(np.arange(len(zones)) + k * width, values, width, label=f"{rate:g} %")
    axis.set_xticks(np.arange(len(zones)) + width * (len(rates) - 1) / 2, zones, rotation=60)
    axis.set_ylabel("curtailment-enabled headroom, GW")
    axis.legend(title="mean annual curtailment")
    images = [_save(figure, folder, "headroom_by_zone.png")]
    summary = {"total_headroom_mw": body["total_headroom_mw"], "published_comparison": body["published_comparison"]}
    if "fleet_mix" in body:
        summary["fleet_mix"] = body["fleet_mix"]
    return _page(folder, "gridshift study curtailment", summary, images)
