"""The searcher starts without torch or pyserini, and says clearly when there is no index."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from indexer.layout import IndexNotFoundError

REPO = Path(__file__).resolve().parents[2]


def test_missing_index_error_names_path_and_fix(tmp_path):
    from indexer.searcher import LexicalSearcher

    with pytest.raises(IndexNotFoundError) as err:
        LexicalSearcher(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(err.value) and "lexvla index" in str(err.value)


@pytest.mark.integration
def test_search_does_not_import_torch(tiny_index):
    code = (
        "import sys\n"
        "from indexer.searcher import LexicalSearcher\n"
        f"s = LexicalSearcher({str(tiny_index)!r})\n"
        "doc = s.document('img0001.jpg')\n"
        "assert s.search({w: v / 1000 for w, v in doc.impacts.items()}, k=3)[0].doc_id == 'img0001.jpg'\n"
        "bad = [m for m in ('torch', 'pyserini', 'transformers') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
