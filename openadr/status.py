"""The VEN's status: registration, active events, instructions and last reports, as one JSON object that the VEN
writes to a file (atomically) and serves at GET /v1/openadr/status, and that `gridshift openadr status` reads.

Secrets never appear here: no client secret, no access token, no webhook bearer token.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fleet.errors import OpenADRError

STATUS_SCHEMA = "gridshift.openadr_status/v1"
STATUS_PATH = "/v1/openadr/status"
DEFAULT_STATUS_FILE = "gridshift-openadr-status.json"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ResourceStatus(_Model):
    """One fleet region registered as a VTN resource."""

    resource_name: str = Field(description="resourceName on the VTN.")
    resource_id: str | None = Field(None, description="The VTN's id of the resource; null until registered.")


class IntervalStatus(_Model):
    """When one event interval runs."""

    id: int = Field(description="Interval id in the event.")
    start: str = Field(description="Start, RFC 3339 UTC.")
    end: str | None = Field(None, description="End, RFC 3339 UTC; null: until cleared.")


class EventStatus(_Model):
    """An OpenADR event the VEN follows, and what it asked of the fleet."""

    event_id: str = Field(description="The VTN's event id.")
    program_id: str = Field(description="The event's programID.")
    event_name: str | None = Field(None, description="eventName, if any.")
    modified: str | None = Field(None, description="modificationDateTime the VEN last read.")
    regions: list[str] = Field(default_factory=list, description="Fleet regions the event applies to.")
    intervals: list[IntervalStatus] = Field(default_factory=list, description="Interval windows.")
    instructions: list[str] = Field(default_factory=list, description="Instructions applied, one line each.")
    notes: list[str] = Field(default_factory=list, description="What could not be acted on, and why.")


class ReportStatus(_Model):
    """A report the VEN sent."""

    report_id: str | None = Field(None, description="The VTN's report id.")
    event_id: str = Field(description="Event the report answers.")
    kind: str = Field(description="capacity (before the event) or usage (during and after).")
    sent_at: str = Field(description="When it was last sent, RFC 3339 UTC.")
    intervals: int = Field(0, description="Report intervals per resource.")
    figures: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="resourceName -> payload type -> last value (units per descriptor)."
    )


class VenStatus(_Model):
    """Everything `gridshift openadr status` shows."""

    schema_id: str = Field(STATUS_SCHEMA, alias="schema", description="Schema of this object.")
    updated_at: str = Field(description="When the VEN wrote this, RFC 3339 UTC.")
    vtn_url: str = Field(description="The VTN.")
    spec_version: str = Field(description="OpenADR version spoken.")
    ven_name: str = Field(description="venName.")
    ven_id: str | None = Field(None, description="The VTN's id of this VEN; null until registered.")
    registered: bool = Field(False, description="VEN and every resource registered.")
    resources: dict[str, ResourceStatus] = Field(default_factory=dict, description="Region -> resource.")
    webhook_url: str | None = Field(None, description="Callback URL given to the VTN; null: polling only.")
    subscriptions: list[str] = Field(default_factory=list, description="Subscription ids on the VTN.")
    last_poll_at: str | None = Field(None, description="Last poll that reached the VTN.")
    last_poll_ok: bool = Field(False, description="Whether the last poll succeeded.")
    polls: int = Field(0, description="Polls that succeeded.")
    notifications: int = Field(0, description="Webhook notifications accepted.")
    events: list[EventStatus] = Field(default_factory=list, description="Events followed now.")
    reports: list[ReportStatus] = Field(default_factory=list, description="Last reports sent, newest first.")
    errors: dict[str, int] = Field(default_factory=dict, description="Failures by kind (http, invalid_json, ...).")
    stats: dict[str, int] = Field(
        default_factory=dict, description="Normal traffic: tokens obtained, answers not modified, retries."
    )
    last_error: str | None = Field(None, description="The last failure, for a human.")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, indent=2)


def default_status_file() -> Path:
    return Path(tempfile.gettempdir()) / DEFAULT_STATUS_FILE


def write_status(status: VenStatus, path: Path) -> None:
    """Write atomically (temp file, then rename) so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(status.to_json())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def parse_status(text: str, source: str) -> VenStatus:
    try:
        return VenStatus.model_validate(json.loads(text))
    except (ValueError, ValidationError) as error:
        raise OpenADRError(f"{source}: not a gridshift OpenADR status ({str(error).splitlines()[0]})") from None


def read_status(path: Path) -> VenStatus:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise OpenADRError(f"{path}: no VEN status ({error.strerror or error}); is the VEN running?") from None
    return parse_status(text, str(path))
