"""The firm backup a curtailed AI site needs for the part of the curtailment its own levers do not deliver.

The curtailment study's ceiling is each zone's record peak, so in that hour the whole new load must go; a simulated
fleet's idle power and real-time work cannot. This module sizes what covers the rest, from the simulated draw:

- the **residual** each hour: grid draw above the grid's room (ceiling - demand), i.e. what the site would still
  import beyond what the study allows; in any simulated hour, so a rebound after an event that overfills the room
  counts too;
- the **firm backup MW**: the largest residual;
- the **storage energy**: the deepest cumulative deficit of an on-site store that starts full, discharges the
  residual and recharges, at most at the backup's power and only with the room the grid has left after the site's
  own draw, at the given round-trip efficiency (sequent peak). With recharge time between events this equals the
  largest sum of residual over one event; events too close to refill add up.

Everything is per unit of the new load L: a draw of 1.0 is L MW, so the backup is MW per MW and the storage MWh
per MW of new load. Pure numpy; docs/simulate.md has the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from grid.trace import FloatArray

BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class WindowDraw:
    """One simulated window, hour by hour, per unit of the new load L."""

    draw: FloatArray  # the site's grid draw (1.0 = L, its mean without control)
    room: FloatArray  # the grid's room for the new load, ceiling - demand (NaN: an hour the study leaves out)
    curtailed: BoolArray  # the hours the study curtails (room < 1)

    def __post_init__(self) -> None:
        if not len(self.draw) == len(self.room) == len(self.curtailed):
            raise ValueError(
                f"draw, room and curtailed must be as long: {len(self.draw)}, {len(self.room)}, {len(self.curtailed)}"
            )
        if np.isnan(self.draw).any():
            raise ValueError("draw has NaN hours: the simulator answers every hour")


def residual(window: WindowDraw) -> FloatArray:
    """Draw above the room each hour (0 where the hour is left out: the study does not curtail it)."""
    room = np.where(np.isnan(window.room), np.inf, window.room)
    return np.maximum(window.draw - room, 0.0)


def spare(window: WindowDraw) -> FloatArray:
    """Room left after the site's own draw each hour: what a store may recharge from (0 where left out)."""
    room = np.nan_to_num(window.room, nan=0.0)
    return np.maximum(room - window.draw, 0.0)


def shed_delivered(window: WindowDraw) -> FloatArray:
    """In each curtailed hour, the share of the required shed (1 - room) the site's levers delivered (1 - draw),
    clipped to [0, 1]: 1 where the draw is within the room."""
    required = 1.0 - window.room[window.curtailed]
    shed = 1.0 - window.draw[window.curtailed]
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(required > 0, shed / required, 1.0)
    return np.clip(share, 0.0, 1.0)


def storage_needed(window: WindowDraw, rating: float, efficiency: float) -> tuple[float, int]:
    """(energy, hour index where the deficit is deepest): the smallest store, starting full, that covers the
    window's residual while recharging at most `rating` (per unit of L) from the spare room at `efficiency`."""
    if rating < 0 or not np.isfinite(rating):
        raise ValueError(f"rating must be a finite number >= 0, got {rating}")
    if not 0.0 < efficiency <= 1.0:
        raise ValueError(f"efficiency must be in (0, 1], got {efficiency}")
    out = residual(window)
    recharge = np.minimum(spare(window), rating) * efficiency
    deficit = deepest = 0.0
    at = 0
    # A running sum clipped at 0 (a full store cannot store more): a short loop per window, not a vector identity.
    for hour, (taken, refilled) in enumerate(zip(out.tolist(), recharge.tolist(), strict=True)):
        deficit = max(deficit + taken - refilled, 0.0)
        if deficit > deepest:
            deepest, at = deficit, hour
    return deepest, at


@dataclass(frozen=True)
class Backup:
    """What a rate's curtailment asks beyond the fleet's levers, over all its simulated windows."""

    backup_mw_per_mw: float  # the largest residual
    storage_mwh_per_mw: float  # the deepest deficit of the store, over all windows
    worst_window: int | None  # index of the window that sets the storage (None: no residual)
    worst_hour: int | None  # hour index inside it where the deficit is deepest
    shed_share_worst: float  # the lowest share of a curtailed hour's required shed the levers delivered
    shed_share_mean: float  # the mean over curtailed hours
    rebound_hours: int  # hours the study does not curtail in which the draw still exceeded the room


def size_backup(windows: list[WindowDraw], efficiency: float) -> Backup:
    """Backup for a rate: the rating is the largest residual of any window, and the store is sized at that rating
    (the recharge a larger rating would allow is not counted: the backup is sized for the discharge)."""
    residuals = [residual(window) for window in windows]
    rating = max((float(r.max()) for r in residuals if len(r)), default=0.0)
    storage, worst_window, worst_hour = 0.0, None, None
    for index, window in enumerate(windows):
        energy, hour = storage_needed(window, rating, efficiency)
        if energy > storage:
            storage, worst_window, worst_hour = energy, index, hour
    shares = np.concatenate([shed_delivered(window) for window in windows]) if windows else np.zeros(0)
    rebound = sum(
        int(np.count_nonzero((r > 0) & ~window.curtailed)) for r, window in zip(residuals, windows, strict=True)
    )
    return Backup(
        backup_mw_per_mw=rating,
        storage_mwh_per_mw=storage,
        worst_window=worst_window,
        worst_hour=worst_hour,
        shed_share_worst=float(shares.min()) if len(shares) else 1.0,
        shed_share_mean=float(shares.mean()) if len(shares) else 1.0,
        rebound_hours=rebound,
    )
