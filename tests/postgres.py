"""A throw-away PostgreSQL cluster for the tests: Debian's server binaries, a fresh data folder,
a free port on 127.0.0.1, trust authentication, stopped (and deleted) at the end. As root the
server runs as the ``postgres`` user, since PostgreSQL refuses to run as root."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile


def bin_dir() -> str | None:
    """The newest installed server's bin folder, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return os.path.dirname(found[-1]) if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self):
        self.bin = bin_dir()
        self.root = tempfile.mkdtemp(prefix="mapdiff-pg-")
        self.data = os.path.join(self.root, "data")
        self.port = _free_port()
        self.as_user = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args):
        subprocess.run([*self.as_user, *args], check=True, capture_output=True, text=True)

    def start(self) -> "Cluster":
        self._run(f"{self.bin}/initdb", "-D", self.data, "-A", "trust", "-U", "mapdiff", "-E", "UTF8", "--no-sync")
        # fsync off: a test cluster is thrown away, its durability does not matter
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60"
        self._run(f"{self.bin}/pg_ctl", "-D", self.data, "-o", options, "-l", os.path.join(self.root, "log"), "-w",
                  "start")
        return self

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://mapdiff@127.0.0.1:{self.port}/{db}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run(f"{self.bin}/pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
