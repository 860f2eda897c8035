"""A PostgreSQL server of a test's own (initdb + pg_ctl on a free port), to stop and start at will.

Debian's server binaries live in /usr/lib/postgresql/<version>/bin; initdb refuses to run as
root, so as root every command runs as the ``postgres`` user.
"""

import glob
import os
import shutil
import subprocess
from pathlib import Path

from local_redis import free_port


def server_binaries():
    """The folder holding initdb and pg_ctl, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl else None


def missing_reason():
    """Why a private server cannot run here, or None when it can."""
    if server_binaries() is None:
        return "no PostgreSQL server binaries (initdb, pg_ctl)"
    if os.geteuid() == 0 and not shutil.which("runuser"):
        return "running as root without runuser to drop to the postgres user"
    return None


class PrivatePostgres:
    """``initdb`` into ``folder`` and serve it on 127.0.0.1:``port`` (trust auth, user postgres)."""

    def __init__(self, folder):
        self.bin = server_binaries()
        self.folder = Path(folder)
        self.data = self.folder / "data"
        self.port = free_port()
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        try:
            self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
            self.start()
        except Exception:
            shutil.rmtree(self.folder, ignore_errors=True)
            raise

    def _run(self, program, *args):
        command = [str(self.bin / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def url(self, database="postgres"):
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self):
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.folder / "server.log"),
            "-w",
            "start",
        )

    def stop(self):
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def running(self):
        try:
            self._run("pg_ctl", "-D", str(self.data), "status")
            return True
        except subprocess.CalledProcessError:
            return False

    def close(self):
        """Stop the server (if it runs) and remove its folder."""
        if self.running():
            self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
