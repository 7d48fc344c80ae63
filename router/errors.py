"""Error hierarchy: every error gridshift raises on purpose derives from GridshiftError."""

from __future__ import annotations


class GridshiftError(Exception):
    """Base class of the errors gridshift raises on purpose."""


class ConfigError(GridshiftError):
    """A fleet config is invalid; the message names the field and the reason."""


class TraceFormatError(GridshiftError):
    """A trace or raw data file is malformed; carries the file, the 1-based line and the reason."""

    def __init__(self, source: str, line: int, reason: str) -> None:
        self.source = source
        self.line = line
        self.reason = reason
        super().__init__(f"{source}:{line}: {reason}")


class UnknownRegionError(GridshiftError):
    """A request or event names a region that is not in the fleet or the latency matrix."""
