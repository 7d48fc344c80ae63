"""How HTTP reaches the gateway: Serve's direct ingress (the gateway replica serves the fleet's port itself) or
Serve's proxy actor in front of it (docs/gateway.md, "Ingress").

Direct ingress is a property of the Ray cluster, not of one deployment: Serve reads it from the environment its
processes start with. So `gridshift up` starts Ray with `ray_environment`, and `deploy` reads what the cluster
actually runs (`cluster_ingress`) and checks it against the fleet (`plan_ingress`) before it starts Serve, so a
mismatch is one clear error instead of a gateway nobody can reach.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from fleet.errors import GridshiftError
from fleet.serving import GatewayConfig, Ingress

DIRECT_INGRESS_DRAIN_S = 1.0
"""How long a stopping gateway replica keeps its port open for late arrivals. Serve's default (30 s) is for
balancers that must notice a replica leaving; here clients reach the one replica straight, and `gridshift down`
and every test teardown would wait it out."""


class IngressMismatch(GridshiftError):
    """The fleet's gateway.ingress cannot be served by the Ray cluster as it was started."""


class PortInUse(GridshiftError):
    """A port the local gateway would listen on is taken by another process."""


@dataclass(frozen=True)
class ClusterIngress:
    """What the Ray cluster's Serve runs with: direct ingress or not, and the ports it hands ingress replicas."""

    direct: bool
    min_http_port: int
    max_http_port: int  # exclusive, as Serve's port allocator takes it

    def owns(self, port: int) -> bool:
        """Whether Serve may hand `port` to a direct-ingress replica."""
        return self.direct and self.min_http_port <= port < self.max_http_port


@dataclass(frozen=True)
class IngressPlan:
    """Where each listener goes: the gateway replica on gateway.port (direct) or not, and Serve's proxy."""

    direct: bool
    proxy_port: int


def wants_direct(gateway: GatewayConfig) -> bool:
    """Whether a cluster started for this gateway should run direct ingress (several replicas cannot)."""
    return gateway.ingress is not Ingress.PROXY and gateway.replicas == 1


def ray_environment(gateway: GatewayConfig) -> dict[str, str]:
    """The environment a Ray cluster needs at start so this gateway's replica serves gateway.port itself;
    empty when the gateway goes through the proxy. The variables are Serve 2.60's; for a cluster of your own,
    put the same ones in `ray start`'s environment on every node."""
    return _direct_environment(gateway.port) if wants_direct(gateway) else {}


def _direct_environment(port: int) -> dict[str, str]:
    return {
        # Direct ingress, plus the rest of Serve's throughput profile the measurements were taken with (gRPC
        # between deployments, user code on the replica's own event loop).
        "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
        "RAY_SERVE_ENABLE_DIRECT_INGRESS": "1",
        # The allocator's range is exactly the fleet's port: the one gateway replica gets it, or fails loudly.
        "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT": str(port),
        "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT": str(port + 1),
        # A replaced gateway replica must get the same port back at once; the quarantine exists for HAProxy,
        # which gridshift does not run.
        "RAY_SERVE_PORT_QUARANTINE_S": "0",
        "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": f"{DIRECT_INGRESS_DRAIN_S:g}",
    }


def plan_ingress(gateway: GatewayConfig, cluster: ClusterIngress) -> IngressPlan:
    """Where the gateway and Serve's proxy listen on this cluster; IngressMismatch says why it cannot serve."""
    direct = gateway.ingress is Ingress.DIRECT or (
        gateway.ingress is Ingress.AUTO and cluster.direct and gateway.replicas == 1
    )
    if direct:
        if not cluster.direct:
            raise IngressMismatch(
                "gateway.ingress: direct, but the Ray cluster was started without Serve's direct ingress; start it "
                f"with {_env_text(gateway)} in its environment (gridshift up does), or set gateway.ingress: proxy"
            )
        if not cluster.owns(gateway.port):
            raise IngressMismatch(
                f"gateway.port: {gateway.port}, but the Ray cluster hands direct-ingress replicas ports "
                f"{cluster.min_http_port}-{cluster.max_http_port - 1}; start it with {_env_text(gateway)}, "
                "or set gateway.ingress: proxy"
            )
        if cluster.owns(gateway.internal_proxy_port):
            raise IngressMismatch(
                f"gateway.proxy_port: {gateway.internal_proxy_port} is in the cluster's direct-ingress port range "
                f"{cluster.min_http_port}-{cluster.max_http_port - 1}; choose a port outside it"
            )
        return IngressPlan(direct=True, proxy_port=gateway.internal_proxy_port)
    if cluster.owns(gateway.port):
        raise IngressMismatch(
            f"gateway.port: {gateway.port} is where the Ray cluster puts direct-ingress replicas, so Serve's proxy "
            f"cannot listen there (gateway.ingress: {gateway.ingress.value}, {gateway.replicas} replica(s)); start "
            "the cluster without RAY_SERVE_THROUGHPUT_OPTIMIZED, or serve through one direct gateway replica"
        )
    return IngressPlan(direct=False, proxy_port=gateway.port)


def local_ports(gateway: GatewayConfig) -> dict[str, tuple[int, bool]]:
    """The ports a cluster `gridshift up` starts for this gateway listens on, by the field that sets each, and
    whether the server that binds it sets SO_REUSEADDR (Serve's proxy does, a direct-ingress replica does not)."""
    if wants_direct(gateway):
        return {"gateway.port": (gateway.port, False), "gateway.proxy_port": (gateway.internal_proxy_port, True)}
    return {"gateway.port": (gateway.port, True)}


TIME_WAIT_S = 65.0
"""How long `gridshift up` waits for a port held only by a stopped server's closed connections: Linux keeps them
(TIME_WAIT) for 60 s."""


def _say(text: str) -> None:
    print(text, flush=True)


def check_ports_free(
    gateway: GatewayConfig,
    *,
    wait_s: float = TIME_WAIT_S,
    say: Callable[[str], None] = _say,
    stop: threading.Event | None = None,
) -> None:
    """Raise PortInUse, naming the field, when another process listens on a port this gateway needs. Checked before
    Ray starts: inside Serve a taken port surfaces only as a failed deployment, after the cluster's start-up.

    A direct-ingress replica binds without SO_REUSEADDR, so after a gateway stops with clients still connected (an
    open console page, a keep-alive client), its port is refused for up to a minute though nothing listens: a
    restart right after Ctrl-C then waits, saying why, instead of failing with "stop what listens there". Setting
    `stop` (Ctrl-C again) ends the wait with PortInUse."""
    interrupted = stop or threading.Event()
    for field, (port, reuse) in local_ports(gateway).items():
        deadline = time.monotonic() + wait_s
        waiting = False
        while (error := _bind_error(gateway.host, port, reuse)) is not None:
            listening = _accepts(gateway.host, port)
            if listening or time.monotonic() >= deadline:
                held = "another process listens there" if listening else f"still held after {wait_s:g} s"
                raise PortInUse(
                    f"{field}: {gateway.host}:{port} is not free ({error}; {held}); stop what listens there "
                    "(another gridshift up?) or choose another port (gridshift up --port, or the fleet file)"
                )
            if not waiting:
                waiting = True
                say(
                    f"gridshift: {field} {gateway.host}:{port} is held by a stopped server's closed connections "
                    f"(TIME_WAIT); waiting up to {wait_s:g} s for it"
                )
            if interrupted.wait(0.5):
                raise PortInUse(f"{field}: {gateway.host}:{port} is not free ({error}); stopped waiting for it")


def _bind_error(host: str, port: int, reuse: bool) -> str | None:
    """Why a server binding as Serve's would be refused the port now, or None when it would not."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        if reuse:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            return error.strerror or str(error)
    return None


def _accepts(host: str, port: int) -> bool:
    """Whether something listens on the port (a refused connection means only closed connections hold it)."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _env_text(gateway: GatewayConfig) -> str:
    """The variables that decide direct ingress and its port (the others only tune it)."""
    essential = (
        "RAY_SERVE_THROUGHPUT_OPTIMIZED",
        "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT",
        "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT",
    )
    environment = _direct_environment(gateway.port)
    return " ".join(f"{key}={environment[key]}" for key in essential)


def cluster_ingress() -> ClusterIngress:
    """Ask the connected Ray cluster what its Serve runs with: a zero-CPU task reads Serve's settings in a worker,
    whose environment is the cluster's, not this driver's."""
    import ray

    @ray.remote(num_cpus=0)
    def serve_settings() -> tuple[bool, int, int]:
        from ray.serve._private import constants

        return (
            bool(constants.RAY_SERVE_ENABLE_DIRECT_INGRESS),
            int(constants.RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT),
            int(constants.RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT),
        )

    direct, low, high = ray.get(serve_settings.remote(), timeout=120)
    return ClusterIngress(direct=direct, min_http_port=low, max_http_port=high)
