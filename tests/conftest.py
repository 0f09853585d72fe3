"""Shared fixtures: bundles exported once per session from the registered random/real-architecture cards."""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def ray_beside_jvm():
    """For tests that start Ray in the test process, where the JVM may already run: without
    libjsig preloaded the JVM's next routine signal kills the process (``indexer.jvm.jsig_library``)."""
    if "libjsig" not in os.environ.get("LD_PRELOAD", ""):
        pytest.fail("Ray beside the JVM needs LD_PRELOAD=<java home>/lib/libjsig.so; `bash .ci/run` sets it")


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory) -> Path:
    """An exported, sealed ``tiny-random`` bundle (the paper's architecture at toy size)."""
    from models.export import export_bundle
    from models.model import LexVLA
    from models.registry import load_card

    out = tmp_path_factory.mktemp("bundles") / "tiny-random"
    export_bundle(LexVLA(load_card("tiny-random")), out)
    return out


@pytest.fixture(scope="session")
def mini_bundle_dir(tmp_path_factory) -> Path:
    """An exported ``lexvla-mini`` bundle with untrained heads (real MobileNetV2 + MiniLM weights)."""
    from models.export import export_bundle
    from models.model import LexVLA
    from models.model_card import write_model_card
    from models.registry import load_card

    out = tmp_path_factory.mktemp("bundles") / "lexvla-mini"
    export_bundle(LexVLA(load_card("lexvla-mini")), out)
    write_model_card(out, [], "pytest (tests/conftest.py: lexvla-mini, untrained heads)")
    return out


def _skip_reasons(session) -> list[str]:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    reasons = []
    for report in (reporter.stats.get("skipped", []) if reporter else []):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reasons.append(f"{report.nodeid}: {reason.removeprefix('Skipped: ')}")
    return reasons


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Every skip with its reason, and in CI (``CI`` set) the ones ``tests/skips.py`` does not allow."""
    from tests.skips import unlisted

    reasons = _skip_reasons(terminalreporter._session)
    if not reasons:
        return
    terminalreporter.section("skips")
    for reason in reasons:
        terminalreporter.write_line(reason)
    bad = unlisted(reasons)
    if bad and os.environ.get("CI"):
        terminalreporter.write_line(f"{len(bad)} skip(s) not listed in tests/skips.py: the setup did not install what they need",
                                    red=True)


def pytest_sessionfinish(session, exitstatus):
    from tests.skips import unlisted

    if os.environ.get("CI") and exitstatus == 0 and unlisted(_skip_reasons(session)):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@contextlib.contextmanager
def tmpfs(mount: Path, size: str):
    """A tmpfs of ``size`` at ``mount`` (a real file system that fills up), unmounted afterwards; a
    skip where mounting is not permitted (listed in tests/skips.py)."""
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"tmpfs mount not permitted here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MiB tmpfs."""
    with tmpfs(tmp_path / "disk", "16m") as mount:
        yield mount


def fill(disk: Path, leave: int) -> Path:
    """A ballast file that leaves about ``leave`` bytes free on ``disk``."""
    ballast = disk / "ballast"
    free = shutil.disk_usage(disk).free
    with open(ballast, "wb") as fh:
        fh.truncate(0)
        fh.write(b"\0" * max(0, free - leave))
    return ballast
