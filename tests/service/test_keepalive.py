"""Keep-alive connections: ``lexvla serve`` sets the server's idle timeout from the settings (not
uvicorn's 5 s default, which is also httpx's idle expiry), and a real server holds an idle
connection for that long and no longer. The reset count under load is ``bench/soak.py``'s."""
from __future__ import annotations

import argparse
import socket
import time

import pytest

from service.config import Settings

pytestmark = pytest.mark.integration


def _healthz(sock: socket.socket, f) -> int:
    sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: t\r\n\r\n")
    status = int(f.readline().split()[1])
    length = 0
    while (line := f.readline()) not in (b"\r\n", b""):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    f.read(length)
    return status


def test_the_default_outlasts_the_common_client_idle_expiries():
    """Clients should drop idle connections before the server does: httpx's expiry is 5 s."""
    import httpx

    keep = Settings(_env_file=None).keep_alive_s
    assert keep > httpx.Limits().keepalive_expiry == 5.0 and keep > 60


@pytest.mark.parametrize("workers", [1, 3])
def test_lexvla_serve_passes_the_keep_alive_setting_to_uvicorn(monkeypatch, tmp_path, workers):
    import uvicorn

    from service import cli, metrics
    from service.engine import Engine

    class Stub:
        def close(self) -> None:
            pass

    ran: dict = {}
    monkeypatch.setattr(Engine, "load", classmethod(lambda cls, settings: Stub()))
    monkeypatch.setattr(metrics, "prepare_multiprocess_dir", lambda: None)
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: ran.update(kw))
    monkeypatch.setenv("LEXVLA_KEEP_ALIVE_S", "42")
    for key in ("BUNDLE", "INDEX", "DEVICE", "WORKERS", "REDIS_URL"):  # run_serve sets the ones it overrides
        monkeypatch.setenv(f"LEXVLA_{key}", "")  # recorded, so that the teardown restores the environment
        monkeypatch.delenv(f"LEXVLA_{key}")
    monkeypatch.chdir(tmp_path)  # no .env
    args = argparse.Namespace(bundle=None, index=None, device=None, workers=workers, redis_url=None, host="127.0.0.1", port=1)
    assert cli.run_serve(args) == 0
    assert ran["timeout_keep_alive"] == 42 and ran.get("workers", 1) == workers


def test_a_real_server_keeps_an_idle_connection_as_long_as_the_setting(served):
    """With the timeout at 2 s a connection idle 1 s still serves (the same socket), and the server
    closes it once idle past 2 s: well before uvicorn's own 5 s would."""
    srv = served(keep_alive_s=2)
    assert srv.server.config.timeout_keep_alive == 2
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock, sock.makefile("rb") as f:
        assert _healthz(sock, f) == 200
        time.sleep(1.0)
        assert _healthz(sock, f) == 200
        idle_from = time.monotonic()
        assert f.read(1) == b""  # the server closes it (the read waits for that, up to the 10 s socket timeout)
        waited = time.monotonic() - idle_from
    assert 1.5 < waited < 4.5, waited
