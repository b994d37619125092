"""A real ClickHouse server for integration tests: Debian's ``clickhouse-server`` on loopback.

Debian ships ClickHouse 18.16: old enough that it lacks ``DateTime64``, server-side
``{name:Type}`` parameters and insert deduplication tokens. It exercises the clickhouse-driver
code path (native protocol, blocks of rows as data, compression, error mapping, reconnects) on
a simple table; the projection DDL is tested on chdb. ``ClickHouseServer`` writes a config under
its own directory, picks free ports, starts the server and waits until it answers; ``stop`` /
``start`` again keep the data (for outage tests).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.support.broker import free_port

BINARY_CANDIDATES = ("/usr/bin/clickhouse-server", "/usr/sbin/clickhouse-server")

CONFIG = """<?xml version="1.0"?>
<yandex>
  <logger>
    <level>warning</level>
    <log>{root}/server.log</log>
    <errorlog>{root}/server.err.log</errorlog>
    <console>0</console>
  </logger>
  <listen_host>127.0.0.1</listen_host>
  <tcp_port>{tcp_port}</tcp_port>
  <http_port>{http_port}</http_port>
  <path>{root}/data/</path>
  <tmp_path>{root}/tmp/</tmp_path>
  <user_files_path>{root}/user_files/</user_files_path>
  <format_schema_path>{root}/format_schemas/</format_schema_path>
  <users_config>{root}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>5368709120</mark_cache_size>
  <max_concurrent_queries>50</max_concurrent_queries>
</yandex>
"""

USERS = """<?xml version="1.0"?>
<yandex>
  <profiles><default></default></profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
  <quotas><default></default></quotas>
</yandex>
"""


def server_binary() -> str | None:
    for candidate in BINARY_CANDIDATES:
        if Path(candidate).exists():
            return candidate
    return shutil.which("clickhouse-server")


class ClickHouseServer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.tcp_port = free_port()
        self.http_port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"clickhouse://default@127.0.0.1:{self.tcp_port}/default"

    def start(self, timeout: float = 30.0) -> None:
        binary = server_binary()
        if binary is None:
            raise RuntimeError("clickhouse-server is not installed (make system-deps)")
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "config.xml"
        config.write_text(
            CONFIG.format(root=self.root, tcp_port=self.tcp_port, http_port=self.http_port)
        )
        (self.root / "users.xml").write_text(USERS)
        out = (self.root / "stdout.log").open("ab")
        self._process = subprocess.Popen(
            [binary, f"--config-file={config}"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.root,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"clickhouse-server exited: {self._log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.tcp_port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"clickhouse-server did not listen within {timeout}s: {self._log_tail()}"
        )

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
        self._process = None

    def _log_tail(self) -> str:
        text = ""
        for name in ("stdout.log", "server.err.log"):
            path = self.root / name
            if path.exists():
                text += path.read_text(errors="replace")[-1500:]
        return text
