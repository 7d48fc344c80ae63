"""The planner's optimisation: the cheapest run slots for a given amount of work, exact (a DP over slots).

Pure: lists of numbers in, intervals out; it knows nothing of signals, forecasts or deadlines (policies/planner.py).
"""

from __future__ import annotations

import math

from policies.plan import HOUR_S

_OFF, _FULL, _LEFT, _RIGHT = 0, 1, 2, 3


def choose_slots(
    starts: list[int],
    ends: list[int],
    rates: list[float],
    work_s: int,
    penalty: float,
    running: bool,
    slot_s: int,
) -> list[tuple[int, int]] | None:
    """Minimum of sum(rate x hours run) + penalty x (runs started) over ways to run exactly `work_s` seconds.

    Exact for this problem: some optimum fills every slot it uses except at most one (shifting time between two
    partly used slots is linear in the amount, so one of them can always be emptied or filled without a loss and
    without a new interval), so slots are off, full, or the one partial slot, whose run sits at the start of
    the slot (continuing the previous slot's run) or at its end (leading into the next). Only the first and
    last slots of a window can be shorter than `slot_s`; which of them are full is enumerated, which fixes how
    many standard slots are full and how long the partial run is. A DP over slots then tracks (standard slots
    filled so far, running at the slot's end, partial used). O(slots x work/slot_s), a few ms for days.
    """
    n = len(starts)
    capacity = [end - start for start, end in zip(starts, ends, strict=True)]
    odd = [k for k in range(n) if capacity[k] != slot_s]
    standard = [k not in odd for k in range(n)]
    standard_after = [0] * (n + 1)  # standard slots from k to the end
    for k in range(n - 1, -1, -1):
        standard_after[k] = standard_after[k + 1] + (1 if standard[k] else 0)
    best: tuple[float, list[int], int] | None = None
    for mask in range(1 << len(odd)):
        full_odd = {odd[bit] for bit in range(len(odd)) if mask >> bit & 1}
        rest = work_s - sum(capacity[k] for k in full_odd)
        if rest < 0:
            continue
        full_standard, partial_s = divmod(rest, slot_s)
        if full_standard > standard_after[0]:
            continue
        found = _dp(capacity, rates, standard, standard_after, full_odd, full_standard, partial_s, penalty, running)
        if found is not None and (best is None or found[0] < best[0]):
            best = (found[0], found[1], partial_s)
    if best is None:
        return None
    _, actions, partial_s = best
    pieces: list[tuple[int, int]] = []
    for k, action in enumerate(actions):
        if action == _FULL:
            pieces.append((starts[k], ends[k]))
        elif action == _LEFT:
            pieces.append((starts[k], starts[k] + partial_s))
        elif action == _RIGHT:
            pieces.append((ends[k] - partial_s, ends[k]))
    return _merge(pieces)


def _dp(
    capacity: list[int],
    rates: list[float],
    standard: list[bool],
    standard_after: list[int],
    full_odd: set[int],
    full_standard: int,
    partial_s: int,
    penalty: float,
    running: bool,
) -> tuple[float, list[int]] | None:
    """One enumerated case of `choose_slots`: minimum cost and the action per slot, or None if impossible."""
    n = len(capacity)
    inf = math.inf
    width = full_standard + 1
    # State index: 2 x running-at-slot-end + partial-used; each holds the cost per count of full standard slots.
    cost = [[inf] * width for _ in range(4)]
    cost[2 if running else 0][0] = 0.0
    choices: list[list[list[int]]] = []
    seen_standard = 0
    for k in range(n):
        hours = capacity[k] / HOUR_S
        run_cost = rates[k] * hours
        part_cost = rates[k] * partial_s / HOUR_S
        must_fill = k in full_odd
        can_part = 0 < partial_s <= capacity[k] and not must_fill
        step = 1 if standard[k] else 0
        new = [[inf] * width for _ in range(4)]
        choice = [[-1] * width for _ in range(4)]
        # Counts that can still reach the target: no more than the standard slots seen, no fewer than needed.
        low = max(0, full_standard - standard_after[k])
        high = min(full_standard, seen_standard)
        counts = range(low, high + 1)
        # Per source state, its target rows bound once (this loop is the planner's hot path); the writes and their
        # order (state by state, count by count: off, full, left, right) are the plain rules', so ties break alike.
        for state in range(4):
            was_running, used = state >> 1, state & 1
            start_cost = 0.0 if was_running else penalty
            row = cost[state]
            full_cost, full_choice = new[2 + used], choice[2 + used]
            full_code = state * 4 + _FULL
            if must_fill:
                for count in counts:
                    value = row[count] + run_cost + start_cost
                    if value < full_cost[count]:
                        full_cost[count] = value
                        full_choice[count] = full_code
                continue
            off_cost, off_choice, off_code = new[used], choice[used], state * 4 + _OFF
            step_full = step == 1
            part = can_part and not used
            left_cost, left_choice, left_code = new[1], choice[1], state * 4 + _LEFT
            right_cost, right_choice, right_code = new[3], choice[3], state * 4 + _RIGHT
            for count in counts:
                base = row[count]
                if base == inf:
                    continue
                if base < off_cost[count]:
                    off_cost[count] = base
                    off_choice[count] = off_code
                if step_full and count < full_standard:
                    value = base + run_cost + start_cost
                    if value < full_cost[count + 1]:
                        full_cost[count + 1] = value
                        full_choice[count + 1] = full_code
                if part:
                    value = base + part_cost + start_cost  # runs from the slot's start, then stops
                    if value < left_cost[count]:
                        left_cost[count] = value
                        left_choice[count] = left_code
                    value = base + part_cost + penalty  # starts mid-slot, runs into the next slot
                    if value < right_cost[count]:
                        right_cost[count] = value
                        right_choice[count] = right_code
        cost = new
        choices.append(choice)
        seen_standard += step
    used_final = 1 if partial_s > 0 else 0
    finals = [(cost[2 * r + used_final][full_standard], 2 * r + used_final) for r in (0, 1)]
    total, state = min(finals)
    if total == inf:
        return None
    actions = [_OFF] * n
    count = full_standard
    for k in range(n - 1, -1, -1):
        code = choices[k][state][count]
        actions[k] = code % 4
        if actions[k] == _FULL and standard[k]:
            count -= 1
        state = code // 4
    return total, actions


def _merge(pieces: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(pieces):
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged
