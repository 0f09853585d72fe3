"""The generation life cycle, written once: new -> fill -> check counts -> publish -> collect.

Every writer of an index root -- the indexing job, :func:`indexer.publish.publish_rows`, appends,
:func:`indexer.publish.remove_documents` and the sharded build -- makes its generation with a
:class:`GenerationWriter`::

    with layout.writer_lock(root), GenerationWriter(root, base, shards) as gw:
        folder = gw.change(i)      # shard i: a copy of the base's shard, to modify (or a new one)
        ...                        # write Lucene + metadata there
        gw.publish(facts)          # link untouched shards, check counts, index.json, CURRENT, collect

A failure anywhere before :meth:`GenerationWriter.publish` returns removes the new generation, so
readers never see it and the next run starts clean.

The approximate path's structure (:mod:`indexer.ann`) is kept in step here too: ``publish`` builds
it for every shard the generation created or changed (unless a part's, built from the same
documents, was linked in), links it for the shards carried over, and checks its count with the
Lucene and metadata counts.

Documents go to shards by :func:`shard_of`, a stable hash of the id: the same id lands in the same
shard on every machine and in every run, so appends and deletes know which shards they touch and
leave the others as they are (hard links, nothing copied).
"""
from __future__ import annotations

import contextlib
import hashlib
import shutil
from pathlib import Path

from indexer import layout, lucene
from indexer.ann import AnnBuild, ann_build, ann_docs, build_ann, has_ann, link_ann
from indexer.info import IndexFormatError, IndexInfo, read_info, write_generation_info
from indexer.metadata import META_FILE, MetadataReader, connect
from indexer.sources import Fingerprint


def shard_of(doc_id: str, shards: int) -> int:
    """The shard of ``doc_id`` among ``shards``: 64 bits of BLAKE2b of the UTF-8 id, modulo ``shards``."""
    if shards == 1:
        return 0
    digest = hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


def shard_folders(gen: Path, info: IndexInfo) -> list[Path]:
    """The ``lucene/`` + ``meta.sqlite`` folders of a generation, in shard order."""
    folders = [layout.shard_dir(gen, i, info.shards) for i in range(info.shards)]
    missing = [f for f in folders if not (f / META_FILE).is_file()]
    if missing:
        raise IndexFormatError(f"{gen} records {info.shards} shards but {missing[0].name} has no {META_FILE}")
    return folders


def published_sources(gen: Path, info: IndexInfo) -> dict[str, Fingerprint | None]:
    """``{doc_id: source fingerprint}`` of every document of a generation, all shards together."""
    out: dict[str, Fingerprint | None] = {}
    for folder in shard_folders(gen, info):
        reader = MetadataReader(folder / META_FILE)
        try:
            out |= reader.sources()
        finally:
            reader.close()
    return out


def discard_unpublished(root: Path) -> None:
    """Remove generations newer than ``CURRENT``: leftovers of a job killed before publishing."""
    current = layout.current_generation(root)
    cur_no = int(current.name.split("-")[1]) if current else 0
    for n in layout.generation_numbers(root):
        if n > cur_no:
            shutil.rmtree(root / layout.GENERATIONS / f"gen-{n:06d}", ignore_errors=True)


class GenerationWriter:
    """Makes one new generation of ``root`` from ``base`` (the published one, or ``None``).

    Must be used under :func:`layout.writer_lock`. Shards not passed to :meth:`change` or
    :meth:`create` are carried over from ``base`` by hard links; with no base, every shard must
    be created.

    Parameters
    ----------
    root : the index root.
    base : the generation the new one starts from, or ``None`` for a fresh build.
    shards : the new generation's shard count; with a base it must be the base's.
    keep_generations : published generations kept by the collection after publishing.
    ann : how each shard's approximate structure is built (:class:`indexer.ann.AnnBuild`), or
        ``None`` for none; by default the base's (none where the base has none, so a generation
        never holds it in some shards only), and :class:`~indexer.ann.AnnBuild`'s defaults for a
        fresh build.
    """

    def __init__(self, root: Path, base: Path | None, shards: int, keep_generations: int = 2,
                 ann: AnnBuild | None | str = "base"):  # fmt: skip
        self.root, self.base, self.shards, self.keep = Path(root), base, int(shards), keep_generations
        self.base_info = read_info(base) if base is not None else None
        if ann == "base":
            ann = AnnBuild() if self.base_info is None else base_ann(self.base_info.ann)
        self.ann: AnnBuild | None = ann if isinstance(ann, AnnBuild) else None
        if self.base_info is not None and base_ann(self.base_info.ann) != self.ann:
            raise ValueError(
                f"{root}'s approximate-search structure was built with {self.base_info.ann}, not "
                f"{self.ann.to_json() if self.ann else None}: the shards a change leaves alone would keep the old one; "
                "change it with --rebuild (a full build)"
            )
        if shards < 1:
            raise ValueError(f"shards must be at least 1, got {shards}")
        if self.base_info is not None and self.base_info.shards != self.shards:
            raise ValueError(
                f"{root} has {self.base_info.shards} shards, not {shards}; re-shard with --rebuild (a full build)"
            )
        self._gen: Path | None = None
        self._made: set[int] = set()

    @property
    def gen(self) -> Path:
        """The new generation's folder (made on entering the ``with`` block)."""
        if self._gen is None:
            raise RuntimeError("GenerationWriter used outside its with block")
        return self._gen

    def __enter__(self) -> GenerationWriter:
        discard_unpublished(self.root)
        self._gen = layout.new_generation(self.root)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None and self._gen is not None:
            shutil.rmtree(self._gen, ignore_errors=True)  # never leave a half-built generation behind

    def folder(self, i: int) -> Path:
        """Shard ``i``'s folder in the new generation."""
        return layout.shard_dir(self.gen, i, self.shards)

    def base_folder(self, i: int) -> Path:
        if self.base is None:
            raise ValueError("a fresh build has no base generation")
        return layout.shard_dir(self.base, i, self.shards)

    def change(self, i: int) -> Path:
        """Shard ``i`` to modify: a copy of the base's (Lucene files linked, metadata copied)."""
        if self.base is None:
            raise ValueError("no base generation to change; use create()")
        dst = self.folder(i)
        if i not in self._made:
            layout.copy_generation(self.base_folder(i), dst)
            self._made.add(i)
        return dst

    def create(self, i: int) -> Path:
        """Shard ``i`` as an empty folder, for a Lucene index and metadata built from scratch."""
        dst = self.folder(i)
        dst.mkdir(parents=True, exist_ok=True)
        self._made.add(i)
        return dst

    def changed(self) -> set[int]:
        return set(self._made)

    def publish(self, facts: dict) -> IndexInfo:
        """Carry untouched shards over, check every shard's counts, write ``index.json``, point
        ``CURRENT`` at the generation and collect old ones. ``facts``: ``indexer.info.bundle_facts``."""
        counts = []
        for i in range(self.shards):
            if i not in self._made:
                if self.base is None:
                    raise RuntimeError(f"shard {i} of {self.gen} was never built")
                layout.copy_generation(self.base_folder(i), self.folder(i), link_metadata=True)
                link_ann(self.base_folder(i), self.folder(i))
            elif self.ann is not None and not ann_current(self.folder(i), self.ann):
                build_ann(self.folder(i), self.ann)
            counts.append(check_counts(self.folder(i), self.ann is not None))
        info = write_generation_info(self.gen, facts | {"ann": self.ann.to_json() if self.ann else None}, counts)
        layout.publish(self.root, self.gen)
        layout.collect_garbage(self.root, self.keep)
        return info


def check_counts(folder: Path, ann: bool = False) -> int:
    """Refuse a shard whose Lucene index and metadata disagree (and, with ``ann``, whose approximate
    structure holds another count); returns its document count."""
    with contextlib.closing(connect(folder / META_FILE, readonly=True)) as conn:
        expected = int(conn.execute("SELECT COUNT(*) FROM docs").fetchone()[0])
    found = lucene.lucene_doc_count(folder / layout.LUCENE_DIR)
    if found != expected:
        raise RuntimeError(f"{folder}: Lucene has {found} documents, metadata {expected}; not publishing")
    if ann and (not has_ann(folder) or ann_docs(folder) != expected):
        held = ann_docs(folder) if has_ann(folder) else "no"
        raise RuntimeError(f"{folder}: the approximate structure has {held} documents, metadata {expected}; not publishing")
    return expected


def base_ann(recorded: dict | None) -> AnnBuild | None:
    """The approximate structure's build settings a generation recorded (``None``: built without one)."""
    return AnnBuild.from_json(recorded) if recorded is not None else None


def ann_current(folder: Path, params: AnnBuild) -> bool:
    """Whether ``folder``'s approximate structure was built with ``params`` from the documents its
    metadata holds now (a part's, linked in by the assembly; never a changed shard's copy, which
    :func:`indexer.layout.copy_generation` leaves without one)."""
    return has_ann(folder) and AnnBuild.from_json(ann_build(folder)) == params
