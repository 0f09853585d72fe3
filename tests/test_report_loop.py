"""The report's loop: trained models are reused only while their code is unchanged, results are
written as they finish, and a killed report resumes from them."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lexvla.experiments import Ledger, Results
from lexvla.pipeline import REPO, TRAINING_CODE, Workspace, code_digest, training_key

NPM_CACHE = Path(os.environ.get("LEXVLA_NPM_CACHE", REPO / "var" / "cache" / "npm"))


def test_an_edit_to_the_training_code_changes_the_training_key(tmp_path, monkeypatch):
    for name in TRAINING_CODE:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, tmp_path / name)
    before = code_digest(root=tmp_path)
    assert before == code_digest()  # the same files, the same digest
    with (tmp_path / "models" / "towers.py").open("a") as fh:
        fh.write("\n# a change of the weight computation\n")
    assert code_digest(root=tmp_path) != before
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("{}\n")
    config = {"card": "lexvla-mini", "manifests": [str(manifest)]}
    key = training_key(config, [manifest])
    monkeypatch.setattr("lexvla.pipeline.code_digest", lambda: "another-code")
    assert training_key(config, [manifest]) != key  # weights of older code are never this code's


def test_results_are_written_when_computed_and_read_back_after(tmp_path):
    ws = Workspace(tmp_path)
    ledger = Ledger()
    results = Results(ws, "eval1", ledger)
    calls = []

    def compute():
        calls.append(1)
        return {"t2i_R@10": 12.5, "examples": [("a", ["b"])]}

    first = results.get("without photos seed 0", "run1", compute)
    again = Results(ws, "eval1", ledger).get("without photos seed 0", "run1", compute)
    assert first == again == {"t2i_R@10": 12.5, "examples": [["a", ["b"]]]} and len(calls) == 1
    assert [e["reused"] for e in ledger.entries] == [False, True] and ledger.reused == ["without photos seed 0"]
    Results(ws, "eval2", ledger).get("without photos seed 0", "run1", compute)  # other evaluation code: computed anew
    Results(ws, "eval1", ledger).get("without photos seed 0", "run2", compute)  # another model: computed anew
    assert len(calls) == 3

    def killed():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        results.get("half", "run1", killed)
    assert not [p for p in results.dir.iterdir() if "half" in p.name]  # nothing half-written is left to reuse


@pytest.mark.slow
@pytest.mark.skipif(not Path("/usr/share/openclipart/png").is_dir(), reason="scripts/setup.sh installs openclipart-png")
def test_a_killed_report_resumes_and_says_what_it_reused(tmp_path):
    work, out = tmp_path / "work", tmp_path / "docs"
    (work / "cache").mkdir(parents=True)
    NPM_CACHE.mkdir(parents=True, exist_ok=True)
    (work / "cache" / "npm").symlink_to(NPM_CACHE.resolve())  # the npm packages the other tests share
    cmd = [sys.executable, "-m", "lexvla", "report", "--workdir", str(work), "--out", str(out), "--data-limit", "16",
           "--max-steps", "3", "--seeds", "1", "--jobs", "1", "--style-limit", "10", "--patchdis-limit", "2"]
    results = work / "report" / "results"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 1200
    while time.monotonic() < deadline and proc.poll() is None and len(list(results.glob("*.json"))) < 2:
        time.sleep(1)
    assert proc.poll() is None, proc.stderr.read().decode()[-3000:] if proc.stderr else ""
    os.killpg(proc.pid, signal.SIGKILL)  # the whole report, mid-evaluation
    proc.wait()
    finished = {p.name for p in results.glob("*.json")}
    trained = sorted(p.name for p in (work / "runs").iterdir())
    assert len(finished) >= 2
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "quality-report.json").read_text())
    reused = [e["name"] for e in report["meta"]["ledger"] if e["reused"]]
    assert len(reused) == len(finished)  # every result the killed run finished, and only those
    assert finished <= {p.name for p in results.glob("*.json")}
    # no training was run twice: the runs the killed report finished are the ones reused
    assert set(trained) <= {p.name for p in (work / "runs").iterdir()}
    assert all((work / "runs" / key / "done.json").is_file() for key in trained if (work / "runs" / key / "weights.pt").is_file())
    text = (out / "quality-report.md").read_text()
    assert f"{len(reused)} results reused from an earlier run of this command" in text
    assert "minutes" in text.splitlines()[2]
