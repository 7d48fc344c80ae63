"""Live terminal views: one panel redrawn in place on a terminal (rich), plain text blocks when stdout is not a
terminal (a log file, a pipe, CI). `gridshift up`, `policy --watch` and `batch status --watch` share it."""

from __future__ import annotations

import io
import sys
from types import TracebackType
from typing import TextIO

from rich.console import Console, RenderableType
from rich.live import Live
from rich.text import Text

PLAIN_WIDTH = 160
"""Plain text is laid out at this width whatever the pipe: log lines stay whole and comparable."""


def plain_text(renderable: RenderableType, width: int = PLAIN_WIDTH) -> str:
    """`renderable` as plain text (no colour, no control codes), as it would print on a terminal `width` wide."""
    sink = io.StringIO()
    Console(file=sink, width=width, color_system=None, force_terminal=False, highlight=False).print(renderable)
    return sink.getvalue().rstrip("\n")


class LiveView:
    """Shows one renderable at a time: redrawn in place on a terminal, appended as a plain block elsewhere."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdout
        self.tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self._live: Live | None = None

    def __enter__(self) -> LiveView:
        if self.tty:
            # Manual refresh: the caller decides when figures are new; the panel never flickers in between.
            self._live = Live(console=Console(file=self._stream), auto_refresh=False, redirect_stdout=False)
            self._live.start()
        return self

    def __exit__(
        self, _kind: type[BaseException] | None, _error: BaseException | None, _trace: TracebackType | None
    ) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def show(self, renderable: RenderableType) -> None:
        """Draw `renderable`; a plain string is printed as it is off a terminal and cropped, not wrapped, on one."""
        if self._live is not None:
            shown = Text(renderable, no_wrap=True, overflow="crop") if isinstance(renderable, str) else renderable
            self._live.update(shown, refresh=True)
            return
        self._stream.write((renderable if isinstance(renderable, str) else plain_text(renderable)) + "\n")
        self._stream.flush()
