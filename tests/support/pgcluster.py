"""Throwaway PostgreSQL 15 clusters for tests that need server-level settings.

The shared test server (127.0.0.1:5432) cannot have per-test settings such as
``shared_preload_libraries = 'pg_cron'``, and tests that restart or crash the
server must not take it down for everybody else. ``start_cluster`` builds a
private cluster (initdb + pg_ctl) in a temp dir, on a free TCP port, with its
unix socket inside that temp dir, so nothing it does is visible outside it.

Usage (fixtures live elsewhere; this module has none on purpose)::

    if pg15_bin_dir() is None or not pg_cron_available():
        pytest.skip("needs PostgreSQL 15 server binaries and pg_cron")
    cluster = start_cluster(
        tmp_path,
        settings={"shared_preload_libraries": "pg_cron", "cron.database_name": "pgqueue"},
        databases=["pgqueue"],
    )
    try:
        ...  # connect with cluster.dsn("pgqueue")
    finally:
        cluster.close()
"""

from __future__ import annotations

import os
import pathlib
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from types import TracebackType

import psycopg
from psycopg import sql

PG_MAJOR = 15

# Debian/Ubuntu (postgresql-common) layout; other layouts are found through a
# pg_config on PATH that reports the same major version.
_DEBIAN_BIN_DIR = pathlib.Path(f"/usr/lib/postgresql/{PG_MAJOR}/bin")

# initdb and postgres refuse to run as root; as root we run them as this user.
_SERVER_OS_USER = "postgres"

# Settings this module owns: dsn() and the socket location depend on them, so a
# caller overriding them would silently point the tests at the wrong place.
_MANAGED_SETTINGS = frozenset({"port", "listen_addresses", "unix_socket_directories"})

# sun_path is 108 bytes on Linux (104 on macOS) including the NUL; the server
# refuses to start when "<socket dir>/.s.PGSQL.<port>" is longer than that.
_MAX_SOCKET_PATH = 100

# A port picked by binding to port 0 can be taken by someone else before the
# postmaster binds it (e.g. pytest-xdist workers starting clusters at once).
_PORT_ATTEMPTS = 5

_PG_CTL_TIMEOUT_S = 120  # crash recovery after stop("immediate") under load can be slow
_LOG_TAIL_LINES = 40


class PgClusterError(RuntimeError):
    """A cluster could not be created, started or stopped; the message carries the log tail."""


def pg15_bin_dir() -> pathlib.Path | None:
    """Directory holding the PostgreSQL 15 server binaries, or None when absent."""
    candidates = [_DEBIAN_BIN_DIR]
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            bindir, version = subprocess.run(
                [pg_config, "--bindir", "--version"],
                capture_output=True,
                text=True,
                check=True,
                timeout=10,
            ).stdout.splitlines()
        except (OSError, subprocess.SubprocessError, ValueError):
            bindir, version = "", ""
        # --version prints e.g. "PostgreSQL 15.20 (Debian 15.20-0+deb12u1)".
        if re.match(rf"PostgreSQL {PG_MAJOR}\b", version):
            candidates.append(pathlib.Path(bindir))
    for cand in candidates:
        if all(os.access(cand / exe, os.X_OK) for exe in ("initdb", "pg_ctl", "postgres")):
            return cand
    return None


def pg_cron_available() -> bool:
    """True when pg_cron is installed for PostgreSQL 15 (library and extension files).

    Both halves are needed: the .so for shared_preload_libraries and the
    control file for CREATE EXTENSION.
    """
    bin_dir = pg15_bin_dir()
    if bin_dir is None:
        return False
    pkglibdir, sharedir = _pg_config_dirs(bin_dir)
    return (pkglibdir / "pg_cron.so").is_file() and (
        sharedir / "extension" / "pg_cron.control"
    ).is_file()


def _pg_config_dirs(bin_dir: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """(pkglibdir, sharedir) of the installation in bin_dir."""
    pg_config = bin_dir / "pg_config"
    if os.access(pg_config, os.X_OK):
        try:
            lib, share = subprocess.run(
                [str(pg_config), "--pkglibdir", "--sharedir"],
                capture_output=True,
                text=True,
                check=True,
                timeout=10,
            ).stdout.splitlines()
            return pathlib.Path(lib), pathlib.Path(share)
        except (OSError, subprocess.SubprocessError, ValueError):
            pass
    # Debian ships pg_config in the bin dir; this is its layout if it is missing.
    return bin_dir.parent / "lib", pathlib.Path(f"/usr/share/postgresql/{PG_MAJOR}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _conf_value(value: str) -> str:
    # Every GUC type accepts a quoted string in postgresql.conf, so always quote.
    return "'" + str(value).replace("'", "''") + "'"


class PgCluster:
    """A private PostgreSQL cluster; create it with start_cluster()."""

    def __init__(self, bin_dir: pathlib.Path, root: pathlib.Path, port: int) -> None:
        self.bin_dir = bin_dir
        self.root = root  # everything lives under here; close() removes it
        self.data_dir = root / "data"
        self.socket_dir = root / "sock"
        self.log_file = root / "server.log"
        self.port = port
        # As root the server binaries must run as the postgres OS user.
        self._as_user = _SERVER_OS_USER if os.geteuid() == 0 else None
        self._closed = False

    # -- connection -------------------------------------------------------

    def dsn(self, dbname: str = "postgres") -> str:
        # TCP rather than the socket: initdb -A trust covers 127.0.0.1, and a
        # TCP DSN works the same for asyncpg, psycopg and subprocesses.
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    # -- lifecycle --------------------------------------------------------

    def start(self) -> None:
        self._pg_ctl("start", "-l", str(self.log_file))

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; mode is pg_ctl's: "smart", "fast" or "immediate" (a crash)."""
        self._pg_ctl("stop", "-m", mode)

    def restart(self, mode: str = "fast") -> None:
        # pg_ctl restart keeps the original start options, including -l.
        self._pg_ctl("restart", "-m", mode, "-l", str(self.log_file))

    def freeze(self) -> None:
        """SIGSTOP the postmaster and every backend: connections stay open and
        new ones are accepted by the kernel, but nothing answers -- what a
        network partition or a hung host looks like to clients."""
        for pid in self._server_pids():
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """Undo freeze()."""
        for pid in reversed(self._server_pids()):
            os.kill(pid, signal.SIGCONT)

    def _server_pids(self) -> list[int]:
        """The postmaster's pid, then its children's (read from /proc)."""
        try:
            postmaster = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError) as exc:
            raise PgClusterError(f"no running postmaster in {self.data_dir}") from exc
        children = []
        for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
            try:
                # "pid (comm) state ppid ...": comm may hold spaces, split after it.
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue  # exited meanwhile
            if int(fields[1]) == postmaster:
                children.append(int(stat.parent.name))
        return [postmaster, *children]

    def is_running(self) -> bool:
        if not self.data_dir.exists():
            return False
        # pg_ctl status: 0 running, 3 not running, 4 no usable data dir.
        return self._run([self._bin("pg_ctl"), "status", "-D", str(self.data_dir)]).returncode == 0

    def close(self) -> None:
        """Stop the server (if running) and delete its files. Safe to call twice."""
        if self._closed:
            return
        try:
            if self.is_running():
                try:
                    self.stop("fast")
                except PgClusterError:
                    # A wedged backend must not leak a postmaster past the test.
                    self.stop("immediate")
        finally:
            self._closed = True
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PgCluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])

    # -- internals --------------------------------------------------------

    def _bin(self, name: str) -> str:
        return str(self.bin_dir / name)

    def _run(
        self, argv: list[str], timeout: float = _PG_CTL_TIMEOUT_S + 30
    ) -> subprocess.CompletedProcess[str]:
        if self._as_user is not None:
            argv = ["runuser", "-u", self._as_user, "--", *argv]
        # cwd=root: the postgres user usually cannot enter root's cwd, and
        # initdb/pg_ctl complain (or fail) when they cannot.
        return subprocess.run(
            argv, cwd=self.root, capture_output=True, text=True, timeout=timeout, check=False
        )

    def _pg_ctl(self, action: str, *extra: str) -> None:
        argv = [
            self._bin("pg_ctl"),
            action,
            "-D",
            str(self.data_dir),
            "-w",
            "-t",
            str(_PG_CTL_TIMEOUT_S),
            *extra,
        ]
        res = self._run(argv)
        if res.returncode != 0:
            raise PgClusterError(
                f"pg_ctl {action} failed (exit {res.returncode}) for {self.data_dir}\n"
                f"--- pg_ctl output ---\n{res.stdout}{res.stderr}"
                f"--- tail of {self.log_file} ---\n{self.log_tail()}"
            )


def start_cluster(
    base_dir: pathlib.Path,
    *,
    settings: Mapping[str, str] | None = None,
    databases: Sequence[str] = (),
) -> PgCluster:
    """initdb a new cluster under base_dir, start it, create `databases`, return it.

    `settings` are appended to postgresql.conf, e.g. ``{"shared_preload_libraries":
    "pg_cron", "cron.database_name": "pgqueue"}``. Durability settings (fsync,
    synchronous_commit, ...) are left at their defaults on purpose: tests measure
    real behaviour; pass them in `settings` to trade that for speed.

    The cluster's own directory is normally a fresh temp dir inside base_dir. When
    that will not work -- the postgres OS user cannot reach base_dir (e.g. root's
    pytest tmp_path, /tmp/pytest-of-root, is mode 0700) or the socket path would
    exceed the OS limit -- it goes in a fresh temp dir under the system temp dir
    instead; `cluster.root` says where, and close() removes it either way.
    """
    settings = dict(settings or {})
    if clash := _MANAGED_SETTINGS & settings.keys():
        raise ValueError(f"start_cluster manages {sorted(clash)} itself")
    bin_dir = pg15_bin_dir()
    if bin_dir is None:
        raise PgClusterError(f"PostgreSQL {PG_MAJOR} server binaries not found")

    cluster = PgCluster(bin_dir, _make_root(pathlib.Path(base_dir)), _free_port())
    try:
        _initdb(cluster)
        conf = cluster.data_dir / "postgresql.conf"
        base_conf = conf.read_text()
        for attempt in range(_PORT_ATTEMPTS):
            conf.write_text(base_conf + _settings_block(cluster, settings))
            try:
                cluster.start()
                break
            except PgClusterError:
                if attempt + 1 < _PORT_ATTEMPTS and "could not bind" in cluster.log_tail():
                    cluster.port = _free_port()  # lost the race for the port; pick another
                    continue
                raise
        _create_databases(cluster, databases)
    except BaseException:
        cluster.close()
        raise
    return cluster


def _make_root(base_dir: pathlib.Path) -> pathlib.Path:
    base_dir.mkdir(parents=True, exist_ok=True)
    root = pathlib.Path(tempfile.mkdtemp(prefix="pgcluster-", dir=base_dir))
    if _root_usable(root):
        return root
    shutil.rmtree(root, ignore_errors=True)
    root = pathlib.Path(tempfile.mkdtemp(prefix="pgcluster-"))
    if not _root_usable(root):
        shutil.rmtree(root, ignore_errors=True)
        raise PgClusterError(
            f"no directory usable by the {_SERVER_OS_USER!r} OS user for a cluster"
        )
    return root


def _root_usable(root: pathlib.Path) -> bool:
    """Prepare root (and its socket dir) for the server's OS user; False if it cannot use it."""
    sock = root / "sock"
    if len(str(sock / ".s.PGSQL.65535")) > _MAX_SOCKET_PATH:
        return False
    sock.mkdir(mode=0o700)
    if os.geteuid() != 0:
        return True
    try:
        pw = pwd.getpwnam(_SERVER_OS_USER)
    except KeyError as err:
        raise PgClusterError(
            f"running as root but there is no {_SERVER_OS_USER!r} OS user to run the server as"
        ) from err
    for path in (root, sock):
        os.chown(path, pw.pw_uid, pw.pw_gid)
    # chown is not enough: every ancestor must be searchable by that user too.
    probe = subprocess.run(
        ["runuser", "-u", _SERVER_OS_USER, "--", "test", "-w", str(sock)],
        capture_output=True,
        check=False,
        timeout=30,
    )
    return probe.returncode == 0


def _initdb(cluster: PgCluster) -> None:
    res = cluster._run(
        [
            cluster._bin("initdb"),
            "-D",
            str(cluster.data_dir),
            "-A",
            "trust",
            "-U",
            "postgres",
            # --no-sync only skips the final fsync of initdb's own files (speed);
            # the running server still fsyncs unless settings say otherwise.
            "--no-sync",
            # Fixed encoding/locale so results do not depend on the machine's LANG.
            "--encoding=UTF8",
            "--no-locale",
        ]
    )
    if res.returncode != 0:
        raise PgClusterError(f"initdb failed (exit {res.returncode}):\n{res.stdout}{res.stderr}")


def _settings_block(cluster: PgCluster, settings: Mapping[str, str]) -> str:
    # Appended after the defaults; for a repeated name postgresql.conf's last entry wins.
    managed = {
        "listen_addresses": "127.0.0.1",
        "port": str(cluster.port),
        "unix_socket_directories": str(cluster.socket_dir),
    }
    lines = ["", "# --- added by tests/support/pgcluster.py ---"]
    lines += [f"{k} = {_conf_value(v)}" for k, v in {**managed, **settings}.items()]
    return "\n".join(lines) + "\n"


def _create_databases(cluster: PgCluster, databases: Sequence[str]) -> None:
    if not databases:
        return
    # CREATE DATABASE cannot run in a transaction block, hence autocommit.
    with psycopg.connect(cluster.dsn("postgres"), autocommit=True, connect_timeout=10) as conn:
        for name in databases:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
