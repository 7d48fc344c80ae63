"""What every section of the fleet config shares, in one place: the strict base model and the URL pattern.

Its own module because `router.config` embeds sections defined beside their code (`router.sources.config`,
`router.openadr.config`), which cannot import `router.config` back.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

HTTP_URL_PATTERN = r"^https?://[^\s/]+(/\S*)?$"
"""An http(s) URL with a host and an optional path: what every URL field of the config accepts."""


class StrictModel(BaseModel):
    """A config section. Unknown keys are typos until proven otherwise: rejected, so a misspelt knob is not silently
    ignored; frozen, so a loaded config cannot drift."""

    model_config = ConfigDict(extra="forbid", frozen=True)
