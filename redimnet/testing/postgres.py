"""A throwaway PostgreSQL server for tests and benchmarks, from the distribution's server binaries.

:func:`temporary_server` runs ``initdb`` and ``pg_ctl`` in a new temporary
folder, listens on 127.0.0.1 at a free port (and on a unix socket in that
folder, nowhere else), trusts local connections, and removes everything when
the block ends.  The binaries are looked up in ``$REDIMNET_PG_BINDIR``, then
Debian's ``/usr/lib/postgresql/<version>/bin`` (the newest), then ``PATH``
(``apt-get install postgresql`` provides them; :func:`find_binaries` returns
``None`` where they are missing, so tests can skip with that reason).

PostgreSQL refuses to run as root: under root the server runs as the
``postgres`` account (created by Debian's package), else ``nobody``, through
``runuser``; the temporary folder is handed to that account.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator, List, Optional

__all__ = ["find_binaries", "temporary_server", "create_database", "MISSING", "ServerError"]

MISSING = "PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql"


class ServerError(RuntimeError):
    """The throwaway server did not start (the message holds the end of its log)."""


def find_binaries() -> Optional[Path]:
    """The folder holding ``initdb`` and ``pg_ctl``, or ``None`` when they are not installed."""
    candidates: List[str] = []
    if os.environ.get("REDIMNET_PG_BINDIR"):
        candidates.append(os.environ["REDIMNET_PG_BINDIR"])

    def version(path: str) -> float:
        try:
            return float(Path(path).parent.name)
        except ValueError:
            return 0.0

    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).parent))
    for folder in candidates:
        if (Path(folder) / "initdb").is_file() and (Path(folder) / "pg_ctl").is_file():
            return Path(folder)
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _account() -> Optional[str]:
    """The account the server runs as when we are root (``None``: run as ourselves)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    import pwd

    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise ServerError("running as root and neither a 'postgres' nor a 'nobody' account exists to run PostgreSQL")


@contextlib.contextmanager
def temporary_server(fsync: bool = False, settings: Optional[dict] = None) -> Iterator[str]:
    """Start a PostgreSQL server; yields its URL (``postgresql://postgres@127.0.0.1:PORT/postgres``).

    ``fsync=False`` (the default) makes tests faster; benchmarks pass
    ``fsync=True`` for the durability a real server has.  ``settings``: more
    ``-c name=value`` server settings.
    """
    binaries = find_binaries()
    if binaries is None:
        raise ServerError(MISSING)
    account = _account()
    prefix = ["runuser", "-u", account, "--"] if account else []
    folder = Path(tempfile.mkdtemp(prefix="redimnet-pg-"))
    data = folder / "data"
    if account:
        import pwd

        entry = pwd.getpwnam(account)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    port = _free_port()
    options = {
        "listen_addresses": "127.0.0.1",
        "port": str(port),
        "unix_socket_directories": str(folder),
        "fsync": "on" if fsync else "off",
        "max_connections": "100",
    }
    options.update({k: str(v) for k, v in (settings or {}).items()})
    log = folder / "server.log"
    started = False
    try:
        initdb = [str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]
        subprocess.run(
            prefix + initdb + ["--locale=C", "--no-sync"], check=True, capture_output=True, timeout=120, cwd=folder
        )
        flags = " ".join(f"-c {name}={value}" for name, value in options.items())
        pg_ctl = [str(binaries / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", flags]
        subprocess.run(
            prefix + pg_ctl + ["-w", "-t", "60", "start"],
            check=True,
            capture_output=True,
            timeout=90,
            cwd=folder,
        )
        started = True
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    except subprocess.CalledProcessError as error:
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        output = (error.stderr or b"").decode(errors="replace")[-2000:]
        raise ServerError(f"PostgreSQL did not start: {output}\n{tail}") from None
    finally:
        if started:
            with contextlib.suppress(Exception):
                subprocess.run(
                    prefix + [str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                    capture_output=True,
                    timeout=60,
                    cwd=folder,
                )
        for _ in range(3):
            shutil.rmtree(folder, ignore_errors=True)
            if not folder.exists():
                break
            time.sleep(0.2)


def create_database(url: str, name: str) -> str:
    """Create database ``name`` on the server of ``url``; returns the URL of the new database."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return url.rsplit("/", 1)[0] + "/" + name
