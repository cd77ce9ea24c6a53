"""A throwaway PostgreSQL cluster (Debian's package) on 127.0.0.1 and a free port, for the tests."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from live_server import free_port

START_TIMEOUT_S = 30


def bin_dir() -> Path | None:
    """/usr/lib/postgresql/<version>/bin holding initdb and pg_ctl (`make servers`), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def missing_reason() -> str | None:
    """Why no cluster can be started here, or None when one can."""
    if bin_dir() is None:
        return "PostgreSQL is not installed: `make servers` installs Debian's postgresql package"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root without a `postgres` system user to run the cluster as"
    return None


class PostgresServer:
    """initdb into a fresh folder, pg_ctl start on loopback (socket in the same folder), stop after.

    PostgreSQL refuses to run as root: as root, it runs as the `postgres` system user (runuser).
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        # Not pytest's tmp_path: as root that sits in a 0700 folder the postgres user cannot enter.
        self.folder = Path(tempfile.mkdtemp(prefix="ragbot-pg-"))
        self.data = self.folder / "data"
        self._as: list[str] = []
        self._started = False

    def _run(self, *args: str) -> None:
        subprocess.run(
            [*self._as, *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=START_TIMEOUT_S * 2,
        )

    def start(self) -> PostgresServer:
        """Create the cluster and return once it accepts connections."""
        binaries = bin_dir()
        if binaries is None:
            raise RuntimeError("PostgreSQL is not installed: run `make servers`")
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.folder, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        self._run(
            str(binaries / "initdb"),
            "-D", str(self.data),
            "-U", "postgres",
            "--auth=trust",
            "-E", "UTF8",
            "--no-sync",
        )  # fmt: skip
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c full_page_writes=off -c synchronous_commit=off"
        )
        self._run(
            str(binaries / "pg_ctl"),
            "-D", str(self.data),
            "-o", options,
            "-l", str(self.folder / "server.log"),
            "-w", "-t", str(START_TIMEOUT_S),
            "start",
        )  # fmt: skip
        self._started = True
        return self

    def stop(self) -> None:
        """Stop the cluster and remove its folder."""
        binaries = bin_dir()
        if self._started and binaries is not None:
            self._run(str(binaries / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
            self._started = False
        shutil.rmtree(self.folder, ignore_errors=True)
