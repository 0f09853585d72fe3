"""Append, delete, atomic publish under a concurrent reader, vanished files, kill-and-resume."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from indexer import layout
from indexer.encode import scan_inputs
from indexer.metadata import META_FILE, MetadataReader
from indexer.publish import remove_documents
from indexer.shard_build import staged_batches
from lexvla.testing import build_index, index_build_processes, scene_images

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def _index(bundle, folder, root, **config):
    """The index job in small batches, so a run commits several checkpoints."""
    return build_index(bundle, folder, root, batch_size=4, **config)


def _published_ids(root: Path) -> list[str]:
    reader = MetadataReader(layout.require_generation(root) / META_FILE)
    try:
        return sorted(r.doc_id for r in reader)
    finally:
        reader.close()


def test_append_delete_and_concurrent_reader(tmp_path, bundle_dir):
    from indexer.searcher import LexicalSearcher

    folder, root = tmp_path / "imgs", tmp_path / "ix"
    scene_images(folder, 20, seed=1)
    assert _index(bundle_dir, folder, root).doc_count == 20
    searcher = LexicalSearcher(root)
    query = {w: v / 1000 for w, v in searcher.document("img0002.png").impacts.items()}
    errors: list[BaseException] = []
    stop = threading.Event()
    searches = [0]

    def reader_loop() -> None:
        while not stop.is_set():
            try:
                hits = searcher.search(query, k=5)
                assert hits and all(searcher.document(h.doc_id) is not None or h.doc_id == "img0002.png" for h in hits)
                searcher.refresh()
                searches[0] += 1
            except BaseException as exc:  # noqa: BLE001 - the test reports every failure
                errors.append(exc)

    threads = [threading.Thread(target=reader_loop) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        scene_images(folder, 10, seed=2, prefix="more")
        rep = _index(bundle_dir, folder, root)
        assert (rep.encoded, rep.skipped_existing, rep.doc_count) == (10, 20, 30)
        assert _index(bundle_dir, folder, root).generation is None  # nothing new: no publish
        rep = remove_documents(root, ["img0002.png", "more0002.png", "unknown"])
        assert (rep.removed, rep.doc_count) == (2, 28)
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors[:3]
    assert searches[0] > 10
    searcher.refresh()
    assert searcher.info.doc_count == 28
    assert searcher.document("img0002.png") is None
    assert "img0002.png" not in {h.doc_id for h in searcher.search(query, k=30)}
    assert len(searcher.search(query, k=100)) <= 28
    searcher.close()
    assert len(layout.generation_numbers(root)) <= 2  # older generations collected
    ids = _published_ids(root)
    assert len(ids) == len(set(ids)) == 28


def test_file_vanishing_mid_run(tmp_path, bundle_dir):
    folder, root = tmp_path / "imgs", tmp_path / "ix"
    scene_images(folder, 40, seed=3)
    victim = folder / "img0038.png"  # late in id order: decoded well after the first batch is committed

    def delete_when_started() -> None:
        deadline = time.time() + 60
        while time.time() < deadline and not _staged(root):
            time.sleep(0.005)
        victim.unlink()

    watcher = threading.Thread(target=delete_when_started)
    watcher.start()
    rep = _index(bundle_dir, folder, root)
    watcher.join()
    assert [r.doc_id for r in rep.rejected] == ["img0038.png"] and "cannot open" in rep.rejected[0].reason
    assert rep.doc_count == 39 and "img0038.png" not in _published_ids(root)


def _run_cli(bundle, folder, root) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "lexvla", "index", "--no-progress", "--batch-size", "4",
           "--bundle", str(bundle), "--input", str(folder), "--index", str(root)]  # fmt: skip
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _staged(root: Path) -> int:
    """Documents the job's finished batches hold (one shard)."""
    try:
        return len(staged_batches(root / layout.STAGING, 1)[0])
    except Exception:  # a batch renamed while we read
        return 0


def _orphans(root: Path, wait_s: float = 3.0) -> list[str]:
    """Command lines of index builds (java) still working on ``root``, after a short grace."""
    deadline = time.time() + wait_s
    while True:
        found = [args for _, args in index_build_processes(str(root))]
        if not found or time.time() > deadline:
            return found
        time.sleep(0.1)


@pytest.mark.parametrize("phase", ["encoding", "lucene"])
def test_sigkill_and_rerun_indexes_each_image_once(tmp_path, bundle_dir, phase):
    """SIGKILL the real CLI while it encodes (or while its java builds the Lucene index), rerun, count ids."""
    folder, root = tmp_path / "imgs", tmp_path / "ix"
    scene_images(folder, 60, seed=4, size=160)
    proc = _run_cli(bundle_dir, folder, root)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if phase == "encoding" and _staged(root) >= 8:
            break
        if phase == "lucene" and _orphans(root, wait_s=0):  # the index build's java is running
            break
        time.sleep(0.01)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _orphans(root) == [], "the index build's java outlived the killed job"
    staged_at_kill = _staged(root)
    assert 0 < staged_at_kill and layout.current_generation(root) is None
    proc = _run_cli(bundle_dir, folder, root)
    assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()[-2000:]
    expected = sorted(it.doc_id for it in scan_inputs(folder))
    assert _published_ids(root) == expected
    from indexer.lucene import lucene_doc_count

    assert lucene_doc_count(layout.require_generation(root) / layout.LUCENE_DIR) == 60
    assert _staged(root) == 0
