"""Bookkeeping across runs: rejects once per content, the same reason in every thread, changed files replaced."""
from __future__ import annotations

import json
import os
import signal
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image, ImageDraw
from test_index_lifecycle import _index, _published_ids, _run_cli, _staged

from indexer import layout
from indexer.encode import decode_one, scan_inputs
from indexer.layout import REJECTS
from indexer.lucene import lucene_doc_count
from indexer.metadata import META_FILE, MetadataReader
from lexvla.testing import bad_images, scene_images

pytestmark = pytest.mark.integration


def _ledger(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / REJECTS).read_text().splitlines()]


def _impacts(root: Path) -> dict[str, dict[str, int]]:
    reader = MetadataReader(layout.require_generation(root) / META_FILE)
    try:
        return {r.doc_id: r.impacts for r in reader}
    finally:
        reader.close()


def _redraw(path: Path, seed: int) -> None:
    """New content for ``path`` (same name, same format): a different picture."""
    img = Image.new("RGB", (120, 90), ["white", "black", "navy"][seed % 3])
    ImageDraw.Draw(img).ellipse((10 + seed, 10, 100, 80), fill=["red", "yellow", "lime"][seed % 3])
    img.save(path)


def test_rejects_are_kept_once_per_content_and_not_decoded_again(tmp_path, bundle_dir):
    folder, root = tmp_path / "imgs", tmp_path / "ix"
    scene_images(folder, 6, seed=5)
    bad = bad_images(folder)
    first = _index(bundle_dir, folder, root)
    lines = _ledger(root)
    assert sorted(e["id"] for e in lines) == ["bad_bomb.png", "bad_random.png", "bad_truncated.png"]
    assert all(len(e["sha256"]) == 64 for e in lines) and not any(r.known for r in first.rejected)

    # the ledger's reason is what a later run reports: the file is not decoded again
    entry = next(e for e in lines if e["id"] == "bad_random.png")
    entry["reason"] = "not a decodable image (as recorded)"
    (root / REJECTS).write_text("".join(json.dumps(e) + "\n" for e in lines))
    os.utime(bad["random"], ns=(1, 1))  # a new mtime, the same content: still known by its hash
    (folder / "copy_of_random.png").write_bytes(bad["random"].read_bytes())  # the same content under a new id
    second = _index(bundle_dir, folder, root)
    reasons = {r.doc_id: r for r in second.rejected}
    assert set(reasons) == {"bad_bomb.png", "bad_random.png", "bad_truncated.png", "copy_of_random.png"}
    assert all(r.known for r in second.rejected)
    assert reasons["bad_random.png"].reason == reasons["copy_of_random.png"].reason == "not a decodable image (as recorded)"
    assert [e["id"] for e in _ledger(root)] == [e["id"] for e in lines] + ["copy_of_random.png"]  # one new line only
    assert second.generation is None and second.encoded == 0

    third = _index(bundle_dir, folder, root)
    assert len(_ledger(root)) == 4 and len(third.rejected) == 4

    # other content under a rejected id is decoded: a fixed file gets indexed
    _redraw(bad["truncated"], 1)
    fourth = _index(bundle_dir, folder, root)
    assert fourth.encoded == 1 and "bad_truncated.png" in _published_ids(root)
    assert len(_ledger(root)) == 4


def _header_only_png(path: Path, width: int, height: int) -> Path:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return path


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_decode_reasons_are_the_same_in_every_thread(tmp_path, bundle_dir):
    """Files between PIL's decompression-bomb warning (89 Mpx) and its error (179 Mpx), under a
    120 Mpx limit: only code that changes the warning filters (not thread-safe) could give them
    two reasons. Decoded from 8 threads at once, many times over."""
    from models.bundle import Bundle

    bad_images(tmp_path)
    for n, side in enumerate((9800, 10000, 10400)):
        _header_only_png(tmp_path / f"warn_{n}.png", side, side)
    scene_images(tmp_path, 3, seed=9)
    items = scan_inputs(tmp_path) * 40
    spec = Bundle(bundle_dir).image_spec
    expected = {it.doc_id: getattr(decode_one(it, spec, 120_000_000), "reason", "ok") for it in scan_inputs(tmp_path)}
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda it: (it.doc_id, getattr(decode_one(it, spec, 120_000_000), "reason", "ok")), items))
    seen: dict[str, set[str]] = {}
    for doc_id, reason in results:
        seen.setdefault(doc_id, set()).add(reason)
    assert {d: {r} for d, r in expected.items()} == seen
    assert all("corrupt or truncated" in expected[f"warn_{n}.png"] for n in range(3))
    assert all("0x" not in r and str(tmp_path) not in r for r in expected.values())


def test_changed_content_is_reencoded_and_replaced(tmp_path, bundle_dir):
    folder, root = tmp_path / "imgs", tmp_path / "ix"
    scene_images(folder, 12, seed=6)
    assert _index(bundle_dir, folder, root).doc_count == 12
    before = _impacts(root)

    os.utime(folder / "img0002.png", ns=(5, 5))  # touched, not changed: nothing to do
    assert _index(bundle_dir, folder, root).generation is None

    _redraw(folder / "img0002.png", 0)
    _redraw(folder / "nested" / "img0003.png", 1)
    rep = _index(bundle_dir, folder, root)
    assert (rep.encoded, rep.replaced, rep.doc_count, rep.skipped_existing) == (2, 2, 12, 10)
    after = _impacts(root)
    fresh_root = tmp_path / "fresh"
    _index(bundle_dir, folder, fresh_root)
    assert after == _impacts(fresh_root)  # exactly the vectors of a from-scratch index of the new files
    assert after["img0002.png"] != before["img0002.png"] and after["nested/img0003.png"] != before["nested/img0003.png"]
    assert {d: v for d, v in after.items() if d not in ("img0002.png", "nested/img0003.png")} == {
        d: v for d, v in before.items() if d not in ("img0002.png", "nested/img0003.png")
    }
    assert lucene_doc_count(layout.require_generation(root) / layout.LUCENE_DIR) == 12  # replaced, not added
    from indexer.searcher import LexicalSearcher

    with LexicalSearcher(root) as searcher:
        hits = searcher.search_vector(after["img0002.png"], k=12)
        assert hits[0].doc_id == "img0002.png" and [h.doc_id for h in hits].count("img0002.png") == 1
    assert _index(bundle_dir, folder, root).generation is None  # and then nothing more to do


def test_sigkill_while_replacing_and_rerun(tmp_path, bundle_dir):
    """SIGKILL the CLI while it re-encodes changed files; the rerun publishes each id once, new vectors."""
    folder, root = tmp_path / "imgs", tmp_path / "ix"
    scene_images(folder, 60, seed=8, size=160)
    assert _index(bundle_dir, folder, root).doc_count == 60
    gen_before = layout.current_generation(root).name
    for n, path in enumerate(sorted(p for p in folder.rglob("*.png"))):
        _redraw(path, n)
    proc = _run_cli(bundle_dir, folder, root)
    import time

    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and _staged(root) < 8:
        time.sleep(0.01)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _staged(root) > 0 and layout.current_generation(root).name == gen_before
    proc = _run_cli(bundle_dir, folder, root)
    assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()[-2000:]
    assert _published_ids(root) == sorted(it.doc_id for it in scan_inputs(folder))
    assert lucene_doc_count(layout.require_generation(root) / layout.LUCENE_DIR) == 60
    fresh_root = tmp_path / "fresh"
    _index(bundle_dir, folder, fresh_root)
    assert _impacts(root) == _impacts(fresh_root) and _staged(root) == 0
