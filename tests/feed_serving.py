"""Helpers for end-to-end server tests: a small built repository and a real `feedrank serve`
subprocess on 127.0.0.1 (uvicorn, as in production) that can be stopped or killed with -9."""

from __future__ import annotations

import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from feedrank.export.build import Builder
from feedrank.export.training import TrainParams

# few shallow trees: the tests check serving, not model quality, and must build in seconds
TEST_TRAINING = TrainParams(iterations=40, depth=4, learning_rate=None, seed=42, threads=1)


@functools.cache
def built_repository(world: Path) -> Path:
    """Build control and test v1 of `world` beside it, once per test session."""
    repository = world.parent / f"{world.name}-repository"
    Builder(world, repository, TEST_TRAINING, progress=False).run()
    return repository


def copy_repository(repository: Path, into: Path) -> Path:
    """A private copy whose router.toml a test may edit."""
    return Path(shutil.copytree(repository, into / "repository"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`feedrank serve` in a child process; `url` once it answers."""

    def __init__(self, world: Path, repository: Path, log_dir: Path, *extra: str,
                 env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_dir = log_dir
        self.output = log_dir.parent / f"server-{self.port}.out"
        command = [sys.executable, "-m", "feedrank", "serve", "--world", str(world),
                   "--repository", str(repository), "--log", str(log_dir),
                   "--port", str(self.port), *extra]
        environment = {**os.environ, "FEEDRANK_SERVER__POLL_INTERVAL_S": "0.2", **(env or {})}
        with self.output.open("wb") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                            env=environment)
        self._wait_ready()

    def _wait_ready(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n"
                                   f"{self.output.read_text()}")
            try:
                if httpx.get(f"{self.url}/router", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"server not ready after {timeout_s} s:\n{self.output.read_text()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()  # SIGKILL: no shutdown code runs
            self.process.wait()

    def logs(self) -> str:
        return self.output.read_text()
