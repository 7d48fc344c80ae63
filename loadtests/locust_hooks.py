"""What every gridshift locustfile shares: locust's event hooks as typed decorators, and the plan argument.

Imported by loadtests/locustfile.py and loadtests/tenant_locustfile.py only (locust processes): never Ray.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from locust import events
from locust.event import EventHook

_Handler = TypeVar("_Handler", bound=Callable[..., None])


def listens_to(hook: EventHook) -> Callable[[_Handler], _Handler]:
    """`hook.add_listener` as a typed decorator (locust's event hooks are untyped)."""

    def register(handler: _Handler) -> _Handler:
        hook.add_listener(handler)  # type: ignore[no-untyped-call]
        return handler

    return register


@listens_to(events.init_command_line_parser)
def _arguments(parser: Any) -> None:
    parser.add_argument("--gridshift-plan", default="", help="the plan JSON loadtests.run wrote for this run")
