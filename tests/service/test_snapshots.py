"""One request, one snapshot: every route that reads the index reads it through one snapshot of
the searcher, and nothing beside it (no one-shot read that could see another generation)."""
from __future__ import annotations

import io

import pytest
from PIL import Image

pytestmark = pytest.mark.integration


class CountingSearcher:
    """A searcher that counts the snapshots taken and records every other attribute read."""

    def __init__(self, inner):
        self.inner, self.snapshots, self.other = inner, 0, []

    def snapshot(self):
        self.snapshots += 1
        return self.inner.snapshot()

    def __getattr__(self, name):
        self.other.append(name)
        return getattr(self.inner, name)


@pytest.fixture
def counted(engine):
    """An engine over the session's parts (no cache) whose searcher counts what requests read."""
    from service.cache import ResilientCache
    from service.engine import Engine

    settings = engine.settings.model_copy(update={"redis_url": ""})
    searcher = CountingSearcher(engine.searcher)
    served = Engine(settings, engine.bundle, searcher, ResilientCache(""))  # type: ignore[arg-type]
    yield served, searcher
    served.search.close()  # not served.close(): the searcher is the session's


def _reads(searcher, call) -> tuple[int, list[str]]:
    searcher.snapshots, searcher.other = 0, []
    call()
    return searcher.snapshots, searcher.other


def test_every_request_reads_the_index_through_one_snapshot(counted, shape_images):
    served, searcher = counted
    doc_id = served.search.search_text("a red circle", k=1).hits[0].doc_id
    upload = io.BytesIO()
    Image.open(next(shape_images.glob("*.png"))).save(upload, format="PNG")
    image, _ = served.images.decode_upload(upload.getvalue())
    calls = {
        "search": lambda: served.search.search_text("a blue star", k=3),
        "search/image": lambda: served.search.search_image(image, 3, [], doc_id),
        "images/{id}": lambda: served.images.image_file(doc_id),
        "thumb": lambda: served.images.thumbnail(doc_id),
        "thumb again (kept in memory)": lambda: served.images.thumbnail(doc_id),
        "heatmap": lambda: served.images.heatmap_png(doc_id, "red"),
    }
    assert {name: _reads(searcher, call) for name, call in calls.items()} == {name: (1, []) for name in calls}
