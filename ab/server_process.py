"""`feedrank serve` as a child process on 127.0.0.1 and a free port: the simulation's server,
and the tests' and benchmarks' (one implementation of "start it and wait until it answers")."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from feedrank.errors import FeedrankError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """The real server: `start()` (or entering) runs it and waits until `GET /router` answers;
    `stop()` (or leaving) ends it with SIGINT so the exposure log is drained; `kill()` is -9."""

    def __init__(
        self,
        world: Path,
        repository: Path,
        log_dir: Path,
        output: Path | None = None,
        *extra: str,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_dir = log_dir
        self.output = output or log_dir.parent / f"server-{self.port}.out"
        self.command = [
            sys.executable,
            "-m",
            "feedrank",
            "serve",
            "--world",
            str(world),
            "--repository",
            str(repository),
            "--log",
            str(log_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *extra,
        ]
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> ServerProcess:
        if self.process is not None and self.process.poll() is None:
            return self  # already running
        with self.output.open("wb") as out:
            self.process = subprocess.Popen(
                self.command, stdout=out, stderr=subprocess.STDOUT, env=self.env
            )
        self._wait_ready(self.process)
        return self

    def stop(self, timeout_s: float = 60.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()  # SIGKILL: no shutdown code runs
            self.process.wait()

    def logs(self) -> str:
        return self.output.read_text()

    def _wait_ready(self, process: subprocess.Popen, timeout_s: float = 300.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise FeedrankError(
                    f"feedrank serve exited with {process.returncode}; its "
                    f"output ({self.output}):\n{self.logs()[-3000:]}"
                )
            try:
                if httpx.get(f"{self.url}/router", timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        self.kill()
        raise FeedrankError(f"feedrank serve not ready after {timeout_s:.0f} s (see {self.output})")
