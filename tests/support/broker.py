"""A real Kafka-protocol broker for integration tests: noida-db on loopback.

noida-db speaks the Kafka wire protocol without a JVM. Known limits (see the brief): group
members that die without leaving are never expired (use a fresh group id per test and restart
the broker after killing a worker), and crash durability is weak, so it is never a durability
oracle. ``Broker`` starts it on a free port with its own data directory, waits until it answers,
and can be stopped and started again on the same port and data (for broker-outage tests).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

NOIDA = Path(sys.executable).with_name("noida-db")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Broker:
    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._log = data_dir.with_suffix(".log")

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        if shutil.which(str(NOIDA)) is None and not NOIDA.exists():
            raise RuntimeError(f"noida-db not found next to {sys.executable}")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self._log.open("ab")
        self._process = subprocess.Popen(
            [
                str(NOIDA),
                "start",
                "--only",
                "kafka",
                "--host",
                "127.0.0.1",
                "--kafka-port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"noida-db exited: {self._log.read_text(errors='replace')[-2000:]}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"noida-db did not listen on {self.bootstrap} within {timeout}s")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
        self._process = None

    def restart(self) -> None:
        self.stop()
        self.start()
