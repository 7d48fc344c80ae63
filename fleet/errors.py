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


class OpenADRError(GridshiftError):
    """An OpenADR 3 exchange failed: the VTN could not be reached, refused us, or answered nonsense."""


class OpenADRValidationError(OpenADRError):
    """An OpenADR 3 payload breaks the spec's schema; the message names the object, the field and the reason."""

    def __init__(self, object_name: str, problems: list[str]) -> None:
        self.object_name = object_name
        self.problems = problems
        super().__init__(f"{object_name}: " + "; ".join(problems))


class SignalSourceError(GridshiftError):
    """A grid signal source gave no usable values on one call: `kind` says why (timeout, connection,
    http_status, rate_limited, auth, credentials, bad_payload, no_data). The message never holds a credential."""

    def __init__(self, source: str, kind: str, detail: str) -> None:
        self.source = source
        self.kind = kind
        self.detail = detail
        super().__init__(f"{source}: {kind}: {detail}")
