"""Topics files and run lines (``lexvla.runs``): the formats pyserini and trec_eval read."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from lexvla.runs import Topic, TopicsError, read_topics, trec_lines


def test_tsv_and_jsonl_topics(tmp_path):
    tsv = tmp_path / "topics.tsv"
    tsv.write_text("q1\ta red circle\n\n2\ta blue  star +star\r\n", encoding="utf-8")
    assert read_topics(tsv) == [Topic("q1", "a red circle"), Topic("2", "a blue  star +star")]
    jsonl = tmp_path / "topics.jsonl"
    jsonl.write_text('{"qid": "q1", "query": "a red circle"}\n{"id": 7, "text": "a dog"}\n{"qid": "t", "title": "cat"}\n')
    assert read_topics(jsonl) == [Topic("q1", "a red circle"), Topic("7", "a dog"), Topic("t", "cat")]


@pytest.mark.parametrize(("name", "content", "message"), [
    ("t.tsv", "q1 a red circle\n", "expected 'qid<TAB>text'"),
    ("t.tsv", "q 1\ta red circle\n", "whitespace"),
    ("t.tsv", "q1\t  \n", "has no text"),
    ("t.tsv", "q1\tred\nq1\tblue\n", "given twice"),
    ("t.tsv", "\n", "holds no topics"),
    ("t.jsonl", '{"qid": "q1"}\n', "needs qid or id"),
    ("t.jsonl", "[1, 2]\n", "JSON object"),
    ("t.jsonl", "{nope\n", "not JSON"),
])  # fmt: skip
def test_bad_topics_name_the_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(TopicsError, match=message):
        read_topics(path)
    with pytest.raises(TopicsError, match="does not exist"):
        read_topics(tmp_path / "missing.tsv")


@dataclass
class _Hit:
    doc_id: str
    score: float


def test_trec_lines_and_ids_they_cannot_hold():
    lines = list(trec_lines("q1", [_Hit("more/a.png", 1.5), _Hit("b.png", 0.25)], "lexvla"))
    assert lines == ["q1 Q0 more/a.png 1 1.500000 lexvla", "q1 Q0 b.png 2 0.250000 lexvla"]
    with pytest.raises(ValueError, match="has whitespace"):
        list(trec_lines("q1", [_Hit("my photo.png", 1.0)], "lexvla"))
