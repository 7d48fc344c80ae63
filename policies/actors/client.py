"""The one way to call a long-lived actor: `await client.call(Api.method, *args)`, typed against the actor's
interface, whether the actor is a Ray actor (`ActorClient`) or an object in this process (`LocalClient`, for tests
and in-process tools). No caller writes `.remote()` by hand or keeps a copy of an actor's method list."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Concatenate, Generic, ParamSpec, Protocol, TypeVar, cast

import ray
from ray.actor import ActorHandle

NAMESPACE = "gridshift"
"""The Ray namespace every gridshift actor is named in."""

DEFAULT_CALL_TIMEOUT_S = 5.0
"""A blocking call that takes longer than this raises (the actor may be restarting)."""

Api = TypeVar("Api", covariant=True)
P = ParamSpec("P")
R = TypeVar("R")


class Client(Protocol[Api]):
    """A handle on an actor implementing `Api`: calls name a method of `Api` and pass its arguments."""

    async def call(self, method: Callable[Concatenate[Api, P], R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call `method` on the actor and await its answer."""
        ...

    def call_sync(self, method: Callable[Concatenate[Api, P], R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call `method` and block until the answer (at most the client's timeout)."""
        ...

    def tell(self, method: Callable[Concatenate[Api, P], R], /, *args: P.args, **kwargs: P.kwargs) -> None:
        """Call `method` without waiting for (or hearing about) its answer: for reports the next one supersedes."""
        ...


class ActorClient(Generic[Api]):
    """A client of a named Ray actor. Given no handle, it looks the actor up by name on first use and again after any
    failed call (the actor may not exist yet, or may have been restarted under a new handle)."""

    def __init__(
        self,
        name: str,
        handle: ActorHandle[Any] | None = None,
        *,
        namespace: str = NAMESPACE,
        timeout_s: float = DEFAULT_CALL_TIMEOUT_S,
    ) -> None:
        self.name = name
        self.namespace = namespace
        self.timeout_s = timeout_s
        self._pinned = handle is not None
        # Untyped: Ray's stubs type `.remote()` results as awaitables that never return.
        self._handle: Any = handle

    def _actor(self) -> Any:
        if self._handle is None:
            self._handle = ray.get_actor(self.name, namespace=self.namespace)
        return self._handle

    def _forget(self) -> None:
        if not self._pinned:
            self._handle = None

    def _remote(self, method: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return getattr(self._actor(), method.__name__).remote(*args, **kwargs)

    async def call(self, method: Callable[Concatenate[Api, P], R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return cast(R, await self._remote(method, args, kwargs))
        except (asyncio.CancelledError, Exception):
            self._forget()
            raise

    def call_sync(self, method: Callable[Concatenate[Api, P], R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return cast(R, ray.get(self._remote(method, args, kwargs), timeout=self.timeout_s))
        except Exception:
            self._forget()
            raise

    def call_sync_awaited(
        self, method: Callable[Concatenate[Api, P], Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """`call_sync` for an async method of the actor: Ray awaits it in the actor; this blocks for its result."""
        try:
            return cast(R, ray.get(self._remote(method, args, kwargs), timeout=self.timeout_s))
        except Exception:
            self._forget()
            raise

    def tell(self, method: Callable[Concatenate[Api, P], R], /, *args: P.args, **kwargs: P.kwargs) -> None:
        try:
            self._remote(method, args, kwargs)
        except Exception:
            self._forget()
            raise


class LocalClient(Generic[Api]):
    """A client of an object in this process: the same calls, made directly (tests, in-process tools)."""

    def __init__(self, target: Api) -> None:
        self.target = target

    def _bound(self, method: Callable[..., Any]) -> Callable[..., Any]:
        # By name, as Ray does: `method` is usually the interface's declaration, and the target's override must run.
        bound: Callable[..., Any] = getattr(self.target, method.__name__)
        return bound

    async def call(self, method: Callable[Concatenate[Api, P], R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        return cast(R, self._bound(method)(*args, **kwargs))

    def call_sync(self, method: Callable[Concatenate[Api, P], R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        return cast(R, self._bound(method)(*args, **kwargs))

    def tell(self, method: Callable[Concatenate[Api, P], R], /, *args: P.args, **kwargs: P.kwargs) -> None:
        self._bound(method)(*args, **kwargs)
