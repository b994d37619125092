"""A real Kafka-protocol broker for the integration tests and the production benchmark:
noida-db on loopback.

noida-db speaks the Kafka wire protocol without a JVM. Known limits (see the brief): group
members that die without leaving are never expired (use a fresh group id per test and restart
the broker after killing a worker), and crash durability is weak, so it is never a durability
oracle. ``Broker`` starts it on a free port with its own data directory, waits until it answers,
and can be stopped and started again on the same port and data (for broker-outage tests);
``cpu()`` is what it has used so far (the benchmark measures it).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import noida_db

# The binary itself, not the venv's ``noida-db`` script: that script is a Python launcher that
# runs the binary as a child and does not pass SIGTERM on, so stopping it would leave the broker
# listening (and a broker-outage test would test nothing).
NOIDA = Path(noida_db.__file__).with_name("noida-db")


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
        if not NOIDA.exists():
            raise RuntimeError(f"noida-db binary not found at {NOIDA}")
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
            start_new_session=True,  # its own process group: stop() ends everything it started
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

    def cpu(self) -> float:
        """CPU seconds (user + system) the running broker has used so far (0 when stopped)."""
        if self._process is None:
            return 0.0
        try:
            stat = Path(f"/proc/{self._process.pid}/stat").read_text()
        except OSError:
            return 0.0
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        process = self._process
        self._process = None
        if process is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            try:
                process.wait(timeout=10)
                break
            except subprocess.TimeoutExpired:
                continue
        # The port must be free again before a restart binds it.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    time.sleep(0.1)
            except OSError:
                return

    def restart(self) -> None:
        self.stop()
        self.start()
