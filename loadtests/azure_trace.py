"""The real request arrivals of an Azure LLM inference service (2023, conversation trace), as embedding requests.

Each row of `azure_llm_inference_2023_conv.csv.gz` is one request: its arrival time and its context tokens. Replayed
here as an embeddings request of one to eight sentences (one per 250 context tokens, rounded up, at most eight),
open-loop at a chosen mean rate: the trace's own inter-arrival gaps, scaled, so bursts stay bursts.
"""

from __future__ import annotations

import gzip
import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

TRACE_FILE = "azure_llm_inference_2023_conv.csv.gz"
TOKENS_PER_SENTENCE = 250
MAX_SENTENCES = 8


@dataclass(frozen=True, slots=True)
class TraceRequest:
    at_s: float  # from the first arrival, in trace time
    sentences: int


def sentences_for(context_tokens: int) -> int:
    return max(1, min(MAX_SENTENCES, math.ceil(context_tokens / TOKENS_PER_SENTENCE)))


def load_trace_requests(path: Path) -> list[TraceRequest]:
    """Every request of the trace, in arrival order; a clear error when the file is absent or malformed."""
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: the Azure LLM inference trace is absent (../shared/data/workloads/{TRACE_FILE})"
        )
    requests: list[TraceRequest] = []
    first: datetime | None = None
    with gzip.open(path, "rt", encoding="utf-8") as text:
        header = text.readline().strip()
        if header != "TIMESTAMP,ContextTokens,GeneratedTokens":
            raise ValueError(f"{path}: unexpected header {header!r}")
        for number, line in enumerate(text, start=2):
            if not line.strip():
                continue
            try:
                stamp, context, _generated = line.strip().split(",")
                at = datetime.fromisoformat(stamp[:26])  # microseconds: the trace has seven fractional digits
                tokens = int(context)
            except ValueError as error:
                raise ValueError(f"{path}:{number}: {error}") from None
            first = first or at
            requests.append(TraceRequest((at - first).total_seconds(), sentences_for(tokens)))
    if len(requests) < 2:
        raise ValueError(f"{path}: fewer than two requests")
    return sorted(requests, key=lambda request: request.at_s)


def _arrivals(requests: list[TraceRequest], offset: int) -> Iterator[TraceRequest]:
    """The trace from request `offset` on, in trace seconds from it, without end: when the trace runs out it starts
    again one mean gap after its last arrival."""
    mean_gap = (requests[-1].at_s - requests[0].at_s) / (len(requests) - 1)
    base, index = 0.0, offset % len(requests)
    start = requests[index].at_s
    while True:
        request = requests[index]
        at = base + request.at_s - start
        yield TraceRequest(at, request.sentences)
        index += 1
        if index == len(requests):
            base, index, start = at + mean_gap, 0, requests[0].at_s


def schedule(requests: list[TraceRequest], rate_per_s: float, duration_s: float, offset: int = 0) -> list[TraceRequest]:
    """The trace from request `offset` on, time-scaled so its mean rate is `rate_per_s`, cut at `duration_s`
    (wrapping around to the start when the trace runs out)."""
    if rate_per_s <= 0 or duration_s <= 0:
        raise ValueError("rate_per_s and duration_s must be positive")
    span = requests[-1].at_s - requests[0].at_s
    scale = (len(requests) - 1) / span / rate_per_s  # trace seconds -> replay seconds
    scaled = (TraceRequest(request.at_s * scale, request.sentences) for request in _arrivals(requests, offset))
    return list(itertools.takewhile(lambda request: request.at_s < duration_s, scaled))


def schedule_window(
    requests: list[TraceRequest], rate_per_s: float, duration_s: float, offset: int = 0
) -> list[TraceRequest]:
    """`rate_per_s x duration_s` consecutive requests of the trace from request `offset` on (wrapping around), their
    own gaps scaled so that this window's mean rate is `rate_per_s`: a short benchmark level offers the multiple it
    names, and its bursts stay bursts. (`schedule` scales by the whole trace's mean rate, so over a few seconds of a
    quiet stretch it offers less: a level named 0.8x of capacity offered about 0.53x.)"""
    if rate_per_s <= 0 or duration_s <= 0:
        raise ValueError("rate_per_s and duration_s must be positive")
    count = max(1, round(rate_per_s * duration_s))
    picked = list(itertools.islice(_arrivals(requests, offset), count))
    # `count` arrivals take `count` gaps: the span to the last one plus one mean gap fills the window.
    span = picked[-1].at_s + (picked[-1].at_s / (count - 1) if count > 1 else 0.0)
    scale = duration_s / span if span > 0 else 0.0
    return [TraceRequest(request.at_s * scale, request.sentences) for request in picked]
