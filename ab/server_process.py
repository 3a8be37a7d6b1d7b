"""`feedrank serve` as a child process on 127.0.0.1 and a free port, for the simulation."""

from __future__ import annotations

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
    """The real server, started on entering and stopped with SIGINT (log drained) on leaving."""

    def __init__(self, world: Path, repository: Path, log_dir: Path, output: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.output = output
        self.command = [sys.executable, "-m", "feedrank", "serve", "--world", str(world),
                        "--repository", str(repository), "--log", str(log_dir),
                        "--host", "127.0.0.1", "--port", str(self.port)]
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> ServerProcess:
        with self.output.open("wb") as out:
            self.process = subprocess.Popen(self.command, stdout=out, stderr=subprocess.STDOUT)
        self._wait_ready()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _wait_ready(self, timeout_s: float = 300.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise FeedrankError(f"feedrank serve exited with {self.process.returncode}; its "
                                    f"output ({self.output}):\n{self.output.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/router", timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        self.__exit__()
        raise FeedrankError(f"feedrank serve not ready after {timeout_s:.0f} s (see {self.output})")
