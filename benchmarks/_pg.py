"""A throwaway (or kept) PostgreSQL cluster for benchmarks, the way scripts/pg-start makes one.

    cluster = Cluster(Path("/tmp/huitou-scale"))
    cluster.init()            # initdb, unless the directory already holds a cluster
    url = cluster.start()     # postgresql+psycopg://huitou@127.0.0.1:PORT/postgres
    ...
    cluster.stop()            # keeps the data directory (reuse it with start() later)
    cluster.remove()          # stop and delete the directory

Debian's server binaries under /usr/lib/postgresql/*/bin (or HUITOU_PG_BINDIR); as root the
server runs as `postgres`, since initdb and pg_ctl refuse root. Loopback only, trust auth
(user huitou, no password), no fsync: for benchmarks and tests, nothing else.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
from pathlib import Path

MARKER = ".huitou-bench-pg"
# Bulk loading 15M rows and then serving two app processes on a shared 2-core machine:
# no durability, room for index builds, no checkpoint storms during COPY.
SERVER_OPTIONS = (
    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
    "-c shared_buffers=512MB -c maintenance_work_mem=512MB -c work_mem=32MB "
    "-c max_wal_size=4GB -c checkpoint_timeout=30min -c max_connections=200"
)


class PgUnavailable(RuntimeError):
    """No PostgreSQL server binaries on this machine."""


def find_bindir() -> Path:
    """The newest Debian PostgreSQL bin directory (or HUITOU_PG_BINDIR, or PATH)."""
    override = os.environ.get("HUITOU_PG_BINDIR")
    if override:
        return Path(override)
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: [int(x) if x.isdigit() else 0 for x in Path(p).parts[-3].split(".")],
    )
    if found:
        return Path(found[-1]).parent
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return Path(initdb).parent
    raise PgUnavailable(
        "PostgreSQL server binaries not found (no /usr/lib/postgresql/*/bin/initdb); "
        "install them (Debian: apt-get install postgresql) or pass a database URL"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_root() -> bool:
    return os.geteuid() == 0


class Cluster:
    """One PostgreSQL data directory under `base` (base/data, base/log)."""

    def __init__(self, base: Path, *, bindir: Path | None = None) -> None:
        self.base = base.resolve()
        self.bindir = bindir or find_bindir()
        self.port: int | None = None

    @property
    def data(self) -> Path:
        return self.base / "data"

    @property
    def log(self) -> Path:
        return self.base / "log"

    def exists(self) -> bool:
        return (self.data / "PG_VERSION").exists() and (self.base / MARKER).exists()

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if _as_root():
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, cwd="/", check=False)

    def init(self) -> bool:
        """initdb unless a cluster is already there; True when a new one was made."""
        if self.exists():
            return False
        self.base.mkdir(parents=True, exist_ok=True)
        if any(self.base.iterdir()):
            raise RuntimeError(f"{self.base} is not empty and holds no benchmark cluster")
        (self.base / MARKER).touch()
        if _as_root():
            shutil.chown(self.base, "postgres", "postgres")
            (self.base).chmod(0o755)
        base_args = ["initdb", "-D", str(self.data), "-A", "trust", "-U", "huitou", "-E", "UTF8"]
        result = self._run(*base_args, "--locale=C.UTF-8")
        if result.returncode != 0:
            shutil.rmtree(self.data, ignore_errors=True)
            result = self._run(*base_args, "--no-locale")
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{result.stdout}\n{result.stderr}")
        return True

    def start(self) -> str:
        """Start the server on a free loopback port; the URL of its `postgres` database."""
        last = ""
        for _ in range(3):
            port = free_port()
            options = f"-h 127.0.0.1 -p {port} -k {self.base} {SERVER_OPTIONS}"
            result = self._run(
                "pg_ctl", "-w", "-t", "120", "-D", str(self.data), "-l", str(self.log),
                "-o", options, "start",
            )  # fmt: skip
            if result.returncode == 0:
                self.port = port
                return self.url("postgres")
            last = result.stderr + self._log_tail()
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        raise RuntimeError(f"could not start PostgreSQL in {self.base}:\n{last}")

    def url(self, database: str) -> str:
        assert self.port is not None, "not started"
        return f"postgresql+psycopg://huitou@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")
        self.port = None

    def remove(self) -> None:
        self.stop()
        if (self.base / MARKER).exists():  # only ever delete what init() made
            shutil.rmtree(self.base, ignore_errors=True)

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
