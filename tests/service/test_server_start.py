"""A server that fails to start says why: the bench and the demo show the service's own last lines."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from lexvla.demo import wait_ready
from tests.service.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_a_service_that_exits_is_reported_with_its_own_words(tmp_path):
    output = tmp_path / "server.log"
    with open(output, "wb") as log_file:
        proc = subprocess.Popen([sys.executable, "-c", "import sys; print('starting'); sys.exit('no index at /nowhere')"],
                                stdout=log_file, stderr=subprocess.STDOUT)
    with pytest.raises(RuntimeError) as err:
        wait_ready(f"http://127.0.0.1:{free_port()}", proc, timeout_s=60, output=output)
    assert "exited with code 1" in str(err.value) and "starting\nno index at /nowhere" in str(err.value)


@pytest.mark.integration
def test_the_search_bench_shows_why_its_server_did_not_start(mini_bundle_dir, shape_index):
    """``--query-mode table`` on a bundle without a table: the bench used to wait 180 s and say only
    "server did not become ready"."""
    spec = importlib.util.spec_from_file_location("search_bench", ROOT / "bench" / "search_bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    with pytest.raises(RuntimeError) as err:
        bench.start_server(mini_bundle_dir, shape_index, free_port(), query_mode="table", timeout_s=120)
    message = str(err.value)
    assert "exited with code" in message and "no query_table.npz for query_mode=table" in message, message
