"""Model work as background work: the request path takes the CPU first, model work takes every cycle it leaves.

On a host that serves and computes at once (two cores here, one node per region in production), the request path
(HTTP, the gateway's admission, each replica's event loop, Ray's own threads) is light but must answer at once: a
rejection that waits behind a model pass is the late 503 the gateway's admission exists to prevent. Ray starts its
workers at nice 15; a nice value only weights the share, and at 2x overload a niced model thread still delayed
rejections past 100 ms (BENCHMARKS.md). Under Linux SCHED_IDLE the model thread runs only on cycles nothing else
wants, and model work of every kind (serving passes, batch tasks, training steps) shares those evenly, thread for
thread, so serving does not starve behind a job.

Policy and priority are per thread on Linux and inherited by the threads a thread starts, so lowering the thread
that runs the model (and starts torch's pool) lowers exactly the model work, never the event loop beside it.
"""

from __future__ import annotations

import logging
import os
import threading

from fleet.serving import ComputeScheduling

logger = logging.getLogger("gridshift.priority")

SETUP_HOOK = f"{__name__}.background_job_worker"
"""Ray's worker_process_setup_hook for gridshift's jobs (rayjobs.submission): it runs in every worker process of the
job, not in its driver."""


def background_thread(scheduling: ComputeScheduling, nice: int) -> str:
    """Make the calling thread (and the threads it starts from now on) background work; returns what is in force:
    "idle", "nice +N" or "normal". Where the OS refuses, the thread keeps its priority: slower rejections under
    overload, never a failure."""
    if scheduling is ComputeScheduling.IDLE and hasattr(os, "SCHED_IDLE"):
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # pid 0: the calling thread
            return "idle"
        except OSError as error:
            logger.warning("model work keeps the normal policy (SCHED_IDLE refused: %s); trying nice", error)
    if nice <= 0:
        return "normal"
    try:
        thread = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, thread, os.getpriority(os.PRIO_PROCESS, thread) + nice)
    except (AttributeError, OSError) as error:  # not Linux/Unix, or not permitted
        logger.warning("model work keeps its priority (nice %d refused: %s)", nice, error)
        return "normal"
    return f"nice +{nice}"


def background_job_worker() -> None:
    """The setup hook: the worker's main thread, which runs the job's tasks and starts torch's threads, becomes
    background work. Ray's own threads in the process started before it and keep their priority."""
    background_thread(ComputeScheduling.IDLE, 0)
