"""Where the gateway listens: the fleet's gateway.ingress against what the Ray cluster runs (serve_apps/ingress.py),
decided before Serve starts so that a mismatch is one clear error rather than a gateway nobody can reach."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest

from fleet.serving import GatewayConfig, Ingress
from serve_apps.cli import main
from serve_apps.ingress import (
    ClusterIngress,
    IngressMismatch,
    IngressPlan,
    PortInUse,
    check_ports_free,
    plan_ingress,
    ray_environment,
)

PLAIN = ClusterIngress(direct=False, min_http_port=30000, max_http_port=31000)  # Serve's defaults, no direct ingress


def _gateway(**fields: Any) -> GatewayConfig:
    return GatewayConfig.model_validate({"port": 8000, **fields})


def _cluster_for(gateway: GatewayConfig) -> ClusterIngress:
    """The cluster `gridshift up` starts for this gateway, read back the way Serve parses its environment."""
    environment = ray_environment(gateway)
    return ClusterIngress(
        direct=environment.get("RAY_SERVE_THROUGHPUT_OPTIMIZED") == "1",
        min_http_port=int(environment.get("RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT", "30000")),
        max_http_port=int(environment.get("RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT", "31000")),
    )


def test_a_cluster_started_for_the_default_gateway_serves_its_port_directly_with_the_proxy_beside_it() -> None:
    gateway = _gateway()
    assert gateway.ingress is Ingress.AUTO
    environment = ray_environment(gateway)
    # Serve's allocator range is [min, max): exactly the fleet's port, so the one replica gets it or fails loudly.
    assert environment["RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT"] == "8000"
    assert environment["RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT"] == "8001"
    assert environment["RAY_SERVE_PORT_QUARANTINE_S"] == "0"
    assert plan_ingress(gateway, _cluster_for(gateway)) == IngressPlan(direct=True, proxy_port=8001)
    assert plan_ingress(_gateway(proxy_port=9100), _cluster_for(gateway)) == IngressPlan(True, 9100)


def test_auto_falls_back_to_the_proxy_on_a_cluster_started_without_direct_ingress() -> None:
    # `serve run serve_config.yaml` or a plain `ray start` cluster: the proxy serves gateway.port, as before.
    assert plan_ingress(_gateway(), PLAIN) == IngressPlan(direct=False, proxy_port=8000)
    assert plan_ingress(_gateway(ingress="proxy"), PLAIN) == IngressPlan(direct=False, proxy_port=8000)


@pytest.mark.parametrize(
    ("gateway", "cluster", "fragments"),
    [
        (  # asked for direct on a plain cluster: the error says which variables to start Ray with
            {"ingress": "direct"},
            PLAIN,
            ["gateway.ingress: direct", "RAY_SERVE_THROUGHPUT_OPTIMIZED=1", "MIN_HTTP_PORT=8000", "ingress: proxy"],
        ),
        (  # a cluster started for another port would put the replica where no client looks
            {"port": 8100},
            ClusterIngress(direct=True, min_http_port=8000, max_http_port=8001),
            ["gateway.port: 8100", "ports 8000-8000", "MIN_HTTP_PORT=8100"],
        ),
        (  # the proxy Serve always starts may not land where replicas get their ports
            {"proxy_port": 8001},
            ClusterIngress(direct=True, min_http_port=8000, max_http_port=8002),
            ["gateway.proxy_port: 8001", "direct-ingress port range 8000-8001"],
        ),
        (  # several replicas need the proxy, and the proxy cannot have the port the cluster reserves
            {"replicas": 2},
            ClusterIngress(direct=True, min_http_port=8000, max_http_port=8001),
            ["gateway.port: 8000", "proxy cannot listen there", "2 replica(s)"],
        ),
        ({"ingress": "proxy"}, ClusterIngress(True, 8000, 8001), ["gateway.ingress: proxy", "proxy cannot listen"]),
    ],
)
def test_a_cluster_that_cannot_serve_the_fleet_is_refused_with_the_reason(
    gateway: dict[str, Any], cluster: ClusterIngress, fragments: list[str]
) -> None:
    with pytest.raises(IngressMismatch) as caught:
        plan_ingress(_gateway(**gateway), cluster)
    for fragment in fragments:
        assert fragment in str(caught.value), f"{fragment!r} not in {caught.value}"


def test_gateways_that_go_through_the_proxy_start_ray_unchanged() -> None:
    assert ray_environment(_gateway(ingress="proxy")) == {}
    assert ray_environment(_gateway(replicas=3)) == {}  # auto with several replicas: each would need its own port
    assert plan_ingress(_gateway(replicas=3), _cluster_for(_gateway(replicas=3))) == IngressPlan(False, 8000)


def _listening() -> socket.socket:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    return server


def test_a_taken_port_is_named_before_ray_starts() -> None:
    with _listening() as taken:
        port = taken.getsockname()[1]
        with pytest.raises(PortInUse, match=rf"gateway.port: 127.0.0.1:{port} is not free"):
            check_ports_free(_gateway(port=port, proxy_port=port + 1 if port < 65535 else 1))
        with pytest.raises(PortInUse, match=rf"gateway.proxy_port: 127.0.0.1:{port} is not free"):
            check_ports_free(_gateway(port=port - 1 if port > 1 else 2, proxy_port=port))
        # Through the proxy, only gateway.port is listened on: the taken proxy_port is not needed.
        check_ports_free(_gateway(ingress="proxy", port=port - 1 if port > 1 else 2, proxy_port=port))
    check_ports_free(_gateway(port=port, proxy_port=port + 1 if port < 65535 else 1))  # free again once closed


def test_gridshift_up_on_a_taken_port_exits_2_with_the_field_not_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with _listening() as taken:
        port = taken.getsockname()[1]
        assert main(["up", "--port", str(port), "--no-dashboard", "--duration-s", "1"]) == 2
    error = capsys.readouterr().err
    assert f"gridshift: error: gateway.port: 127.0.0.1:{port} is not free" in error
    assert "Traceback" not in error


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _port_held_by_a_closed_connection(*, reuse: bool) -> int:
    """A port nothing listens on any more, held by the server's side of a connection it closed first (TIME_WAIT,
    as a gateway leaves behind when it stops with a client connected); its listener set SO_REUSEADDR or not."""
    with socket.socket() as server:
        if reuse:
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = int(server.getsockname()[1])
        with socket.create_connection(("127.0.0.1", port)) as client:
            accepted, _ = server.accept()
            accepted.close()  # the server closes first ...
            assert client.recv(1) == b""  # ... the client sees it, and closes too
    return port


def test_a_port_held_only_by_a_stopped_gateways_connections_is_waited_for_and_said_so() -> None:
    port = _port_held_by_a_closed_connection(reuse=False)
    said: list[str] = []
    direct = _gateway(ingress="direct", port=port, proxy_port=_free_port())
    with pytest.raises(PortInUse, match=rf"gateway.port: 127.0.0.1:{port} is not free .*still held after 0.6 s"):
        check_ports_free(direct, wait_s=0.6, say=said.append)
    assert len(said) == 1
    assert "TIME_WAIT" in said[0]
    assert "waiting up to 0.6 s" in said[0]


def test_a_closed_connections_port_is_free_to_the_proxy_but_not_to_a_direct_ingress_replica() -> None:
    # Serve's proxy binds with SO_REUSEADDR, a direct-ingress replica without: the check binds as each would.
    port = _port_held_by_a_closed_connection(reuse=True)
    check_ports_free(_gateway(ingress="proxy", port=port), wait_s=0.0)
    with pytest.raises(PortInUse, match=rf"gateway.port: 127.0.0.1:{port} is not free"):
        check_ports_free(_gateway(ingress="direct", port=port, proxy_port=_free_port()), wait_s=0.0)


def test_the_wait_ends_as_soon_as_the_port_is_free(monkeypatch: pytest.MonkeyPatch) -> None:
    import serve_apps.ingress as ingress

    refusals = iter(["Address already in use", "Address already in use", None])
    monkeypatch.setattr(ingress, "_bind_error", lambda *_: next(refusals))
    monkeypatch.setattr(ingress, "_accepts", lambda *_: False)
    said: list[str] = []
    check_ports_free(_gateway(ingress="proxy"), say=said.append)
    assert len(said) == 1
    assert next(refusals, "drained") == "drained"


def test_ctrl_c_ends_the_wait_for_a_port(monkeypatch: pytest.MonkeyPatch) -> None:
    import serve_apps.ingress as ingress

    monkeypatch.setattr(ingress, "_bind_error", lambda *_: "Address already in use")
    monkeypatch.setattr(ingress, "_accepts", lambda *_: False)
    stop = threading.Event()
    stop.set()  # as the CLI's SIGINT handler does
    began = time.monotonic()
    with pytest.raises(PortInUse, match=r"gateway.port: 127.0.0.1:8000 is not free .*stopped waiting"):
        check_ports_free(_gateway(ingress="proxy"), say=lambda _: None, stop=stop)
    assert time.monotonic() - began < 5.0  # not the 65 s wait
