"""The gateways a load-test run sends load to: one given by URL, or a child process this runner starts and stops."""

from __future__ import annotations

import argparse
import contextlib
import os
import queue
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from loadtests.embedded_gateway import PREFIX, TOKEN_ENV
from loadtests.run_settings import RunError, RunSettings, say
from loadtests.scenarios import check_loopback

GATEWAY_START_TIMEOUT_S = 420.0  # Ray, Serve and four model replicas on two cores
KILL_TIMEOUT_S = 60.0


class Gateway:
    """Where the load goes. The base class is a gateway given by URL: nothing to start or stop, no kill."""

    def __init__(self, url: str, admin_token: str | None) -> None:
        self.url = url
        self.admin_token = admin_token

    def kill_region(self, region: str) -> str:
        raise RunError(f"cannot kill {region}: region kills need the embedded gateway (run without --url)")

    def stop(self) -> None:
        return None


class ChildGateway(Gateway):
    """A gateway this runner started as a child process, reading its protocol lines from stdout."""

    def __init__(
        self, command: list[str], url: str, admin_token: str, log_path: Path, ready_prefix: str | None
    ) -> None:
        super().__init__(url, admin_token)
        self._log = log_path.open("a", encoding="utf-8")
        environment = {**os.environ, TOKEN_ENV: admin_token}
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=environment,
            start_new_session=True,  # Ctrl-C in the terminal reaches the runner, which stops the child in order
        )
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read_stdout, daemon=True).start()
        self._ready_prefix = ready_prefix

    def _read_stdout(self) -> None:
        stdout = self._process.stdout
        if stdout is None:
            return
        for line in stdout:
            self._log.write(line)
            self._log.flush()
            if line.startswith(PREFIX):
                self._lines.put(line[len(PREFIX) :].strip())

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        if self._ready_prefix is not None:
            self._expect(self._ready_prefix, deadline)
        while not _ready(self.url):
            if self._process.poll() is not None:
                raise RunError(f"the gateway exited with status {self._process.returncode}; see {self._log.name}")
            if time.monotonic() > deadline:
                raise RunError(f"the gateway was not ready (/readyz) within {timeout_s:.0f} s; see {self._log.name}")
            time.sleep(0.5)

    def _expect(self, prefix: str, deadline: float) -> str:
        while True:
            if self._process.poll() is not None and self._lines.empty():
                raise RunError(f"the gateway exited with status {self._process.returncode}; see {self._log.name}")
            try:
                line = self._lines.get(timeout=max(0.1, min(1.0, deadline - time.monotonic())))
            except queue.Empty:
                if time.monotonic() > deadline:
                    raise RunError(f"the gateway did not say {prefix!r} in time; see {self._log.name}") from None
                continue
            if line.startswith(prefix):
                return line
            if line.startswith("error"):
                raise RunError(f"the gateway refused a command: {line}")

    def _send(self, command: str) -> None:
        stdin = self._process.stdin
        if stdin is None or self._process.poll() is not None:
            raise RunError("the gateway process is gone")
        stdin.write(command + "\n")
        stdin.flush()

    def stop(self) -> None:
        with contextlib.suppress(OSError, RunError):
            self._send("stop")
        try:
            self._process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            self._process.terminate()
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._log.close()


class EmbeddedGateway(ChildGateway):
    """The default fleet on a local Ray cluster in a child process (loadtests.embedded_gateway)."""

    def kill_region(self, region: str) -> str:
        self._send(f"kill {region}")
        answer = self._expect(f"killed {region}", time.monotonic() + KILL_TIMEOUT_S)
        killed = answer.split()[-1]
        if killed == "0":
            raise RunError(f"no replica of {region} was found to kill")
        return f"{killed} replica(s) killed"


class FakeGateway(ChildGateway):
    """The deliberately wrong gateway (loadtests.fake_gateway): always serves at the origin."""

    def kill_region(self, region: str) -> str:
        raise RunError(f"cannot kill {region}: the fake gateway has no regions to kill")

    def stop(self) -> None:
        self._process.terminate()  # an aiohttp server: SIGTERM is its clean stop
        super().stop()


def _ready(url: str) -> bool:
    # Readiness, not liveness: a run that starts on /healthz measures the fleet's warm-up as errors and latency.
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, ValueError):
        return False


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def gateway_for(args: argparse.Namespace, settings: RunSettings) -> Iterator[Gateway]:
    if args.url:
        yield Gateway(check_loopback(args.url), os.environ.get(TOKEN_ENV))
        return
    port = args.port or free_port()
    url = f"http://127.0.0.1:{port}"
    token = secrets.token_urlsafe(24)
    log = settings.results / "gateway.log"
    fleet_args = ["--fleet", args.fleet] if args.fleet else []
    child: ChildGateway
    if args.fake_gateway:
        say(f"starting the deliberately wrong gateway at {url}")
        command = [sys.executable, "-m", "loadtests.fake_gateway", "--port", str(port), "--at", args.start, *fleet_args]
        child = FakeGateway(command, url, token, log, ready_prefix=None)
    else:
        say(f"starting the embedded default fleet at {url} (Ray, Serve, four model replicas: about a minute)")
        command = [sys.executable, "-m", "loadtests.embedded_gateway", "--port", str(port), "--start", args.start]
        command += fleet_args + (["--no-wan-emulation"] if args.no_wan_emulation else [])
        child = EmbeddedGateway(command, url, token, log, ready_prefix="ready")
    try:
        child.wait_ready(GATEWAY_START_TIMEOUT_S)
        say(f"gateway ready at {url}")
        yield child
    finally:
        say("stopping the gateway")
        child.stop()
