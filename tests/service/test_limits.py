"""Bounded work per request, against real uvicorn servers: body limits while streaming, word and
heatmap caps, reduced-size decoding within the memory budget, the image queue, and liveness that
never waits for the thread pool."""
from __future__ import annotations

import io
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from PIL import Image

from lexvla.testing import draw_shape
from service.engine import Engine
from service.schemas import ErrorResponse

pytestmark = pytest.mark.integration


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=80)
    return buf.getvalue()


def _error(r: httpx.Response, status: int) -> ErrorResponse:
    assert r.status_code == status, r.text[:500]
    assert r.headers["content-type"] == "application/json"
    return ErrorResponse.model_validate(r.json())


@pytest.mark.parametrize("route", ["/encode", "/search"])
def test_chunked_body_over_the_limit_is_refused_while_streaming(server, route):
    """No Content-Length: the body is counted as it arrives and reading stops at the limit."""
    sent = 0

    def body():
        nonlocal sent
        if route == "/encode":  # a well-formed multipart file part that never ends
            yield b'--abc\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\nContent-Type: image/png\r\n\r\n'
        chunk = b"x" * (1 << 20)
        for _ in range(100):  # 100 MB if the server kept reading
            sent += len(chunk)
            yield chunk

    ctype = "multipart/form-data; boundary=abc" if route == "/encode" else "application/json"
    with httpx.Client(base_url=server.url, timeout=60) as client:
        r = client.post(route, content=body(), headers={"content-type": ctype})
    err = _error(r, 413)
    assert "limit" in err.detail
    assert sent < 40 << 20, f"the client got to send {sent >> 20} MB"


def test_declared_length_over_the_limit_is_refused_before_reading(http):
    big = b"{" + b" " * 1_100_000 + b"}"  # over max_body_bytes (1 MB) of /search
    err = _error(http.post("/search", content=big, headers={"content-type": "application/json"}), 413)
    assert "request body is over 1000000 bytes" in err.detail
    _error(http.post("/encode", files={"file": ("a.bin", b"\0" * 3_000_000, "image/png")}), 413)


def test_query_words_after_edits_are_capped_with_a_clear_422(http, engine):
    encoded, _ = engine.search.encode_text("a red circle")
    words = [w for w in engine.bundle.words[2000:8000] if w.isalpha() and w not in encoded]
    assert len(words) > 4070
    ok = http.post("/search", json={"query": "a red circle", "boost": {w: 1.5 for w in words[:200]}, "k": 5})
    assert ok.status_code == 200, ok.text[:300]
    cases = [
        ({"query": "a red circle", "boost": {w: 2.0 for w in words[:300]}}, "300 boosted or excluded words"),
        ({"query": "a red circle", "exclude": words[:4070]}, "4070 boosted or excluded words"),  # a 500 from Lucene before
        ({"query": "a red circle", "boost": {w: 2.0 for w in words[:256]}}, f"{256 + len(encoded)} words after the edits"),
    ]
    for body, what in cases:
        r = http.post("/search", json=body)
        err = _error(r, 422)
        assert what in err.detail and "the limit is 256 words (LEXVLA_MAX_QUERY_WORDS)" in err.detail, err.detail
        assert len(r.content) < 2000 and "contents:" not in r.text  # no echo of a Lucene query


def test_heatmap_count_is_capped(http, shape_images):
    data = (shape_images / "red_circle_1.png").read_bytes()
    words = ["red", "circle", "blue", "square", "star", "green", "dog", "cat", "tree", "car", "sun", "sky", "sea", "boat"]
    ok = http.post("/encode", files={"file": ("x.png", data, "image/png")}, data={"heatmaps": ",".join(words), "heatmap_top_n": "2"})
    assert ok.status_code == 200 and len(ok.json()["heatmaps"]) <= 16
    err = _error(http.post("/encode", files={"file": ("x.png", data, "image/png")},
                           data={"heatmaps": ",".join(words + ["house"]), "heatmap_top_n": "2"}), 422)  # fmt: skip
    assert "17 heatmaps" in err.detail and "the limit is 16 (LEXVLA_MAX_HEATMAPS)" in err.detail
    err = _error(http.post("/encode", json={"image_base64": "AAAA", "heatmaps": [f"w{i}" for i in range(3000)]}), 422)
    assert "the limit is 16" in err.detail  # refused before the (bad) image is even decoded


def test_large_uploads_are_decoded_at_reduced_size_within_the_memory_budget(served):
    """A 6000x6000 JPEG decodes through JPEG's DCT scaling within a 64 MB budget that the same
    picture as PNG (144 MB to decode at full size) does not fit. Sizes reported are the file's."""
    srv = served(image_memory_mb=64, image_workers=1, max_pixels=40_000_000, max_upload_bytes=5_000_000)
    picture = draw_shape("star", "blue", (6000, 6000), 1)
    with srv.client() as http:
        r = http.post("/encode", files={"file": ("big.jpg", _jpeg(picture), "image/jpeg")},
                      data={"heatmaps": "blue", "heatmap_format": "png"})  # fmt: skip
        assert r.status_code == 200, r.text[:300]
        body = r.json()
        assert (body["width"], body["height"]) == (6000, 6000)
        import base64

        overlay = Image.open(io.BytesIO(base64.b64decode(body["heatmaps"][0]["png"].split(",", 1)[1])))
        assert max(overlay.size) == 512
        err = _error(http.post("/encode", files={"file": ("big.png", _png(picture), "image/png")}), 413)
        assert "needs 144 MB; the limit is 64 MB" in err.detail


def test_rgba_png_is_reduced_before_the_white_composite(engine):
    """The 6300x6300 RGBA PNG of the issue: decoded, then shrunk 6x before compositing."""
    rgba = Image.new("RGBA", (6300, 6300), (0, 0, 0, 0))
    rgba.paste(draw_shape("circle", "red", (3000, 3000), 2).convert("RGBA"), (1600, 1600))
    settings = engine.settings.model_copy(update={"max_pixels": 40_000_000, "max_upload_bytes": 5_000_000})
    image, size = Engine(settings, engine.bundle, engine.searcher, engine.cache).images.decode_upload(_png(rgba))
    assert size == (6300, 6300) and image.size == (1050, 1050) and image.mode == "RGB"
    assert image.getpixel((5, 5)) == (255, 255, 255) and image.getpixel((525, 525)) == (220, 30, 30)


def test_full_image_queue_answers_503_with_retry_after(served, shape_images):
    srv = served(image_workers=1, image_queue=1, retry_after_s=3)
    data = _png(draw_shape("triangle", "green", (1600, 1200), 3))
    start = threading.Barrier(12)

    def post(_):
        with srv.client() as http:
            start.wait()
            return http.post("/encode", files={"file": ("x.png", data, "image/png")},
                             data={"heatmap_top_n": "8", "heatmaps": "green,triangle"})  # fmt: skip

    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(post, range(12)))
    statuses = sorted(r.status_code for r in answers)
    assert set(statuses) <= {200, 503} and statuses[0] == 200 and statuses[-1] == 503, statuses
    for r in answers:
        if r.status_code == 503:
            assert r.headers["retry-after"] == "3" and "busy" in _error(r, 503).detail
    assert srv.app.state.image_work.admitted == 0


def test_liveness_and_readiness_do_not_wait_for_the_thread_pool(served, engine):
    """Every thread of the pool blocked in a search (the JVM thread is held): /healthz and /readyz
    still answer at once, and the searches all finish once the JVM is free again."""
    from indexer.jvm import call_in_jvm

    srv = served(redis_url="")
    release = threading.Event()
    holder = threading.Thread(target=call_in_jvm, args=(release.wait, 60))
    holder.start()
    try:
        def search(i: int) -> int:
            with srv.client() as http:
                return http.post("/search", json={"query": f"a red circle {uuid.uuid4().hex[:8]} {i}", "k": 3}).status_code

        with ThreadPoolExecutor(48) as pool:
            searches = [pool.submit(search, i) for i in range(48)]
            import time

            time.sleep(1.0)  # let the searches take the pool's threads (40 by default)
            assert not any(f.done() for f in searches)
            with httpx.Client(base_url=srv.url, timeout=5) as probe:
                for _ in range(5):
                    assert probe.get("/healthz").json() == {"status": "ok"}
                    assert probe.get("/readyz").json()["ready"] is True
            assert not any(f.done() for f in searches)  # they were answered while the pool was full
            release.set()
            assert [f.result() for f in searches] == [200] * 48
    finally:
        release.set()
        holder.join()


# ---- the text encoder's token budget ---------------------------------------------------------
def _tokens(engine, text: str) -> int:
    pre = engine.bundle.text_preprocessor
    return len(pre.tokenizer.encode(text.lower() if pre.lowercase else text.strip(), add_special_tokens=False).ids)


@pytest.mark.parametrize("text", [
    " ".join(["red circle blue square green star"] * 20)[:512],  # the 512 characters, a word cut at the end
    "  a picture of " + "pneumonoultramicroscopic silicovolcanoconiosis, " * 8,  # long words: many tokens each
    "Café, crème brûlée & ünïcode 😀 — dog-house; " * 6,  # punctuation splits words into several tokens
    "a red circle",
])  # fmt: skip
def test_words_past_the_token_budget_are_exactly_those_not_encoded(engine, text):
    """The words listed are those the preprocessor cuts: the words before them fit the budget, and
    the first of them does not (in whole); the preprocessor's own truncation agrees."""
    import warnings

    from service.search import unencoded_words

    pre = engine.bundle.text_preprocessor
    left = unencoded_words(pre, text)
    words = text.split()
    kept = words[: len(words) - len(left)]
    assert words[len(kept):] == left
    assert _tokens(engine, " ".join(kept)) <= pre.max_caption_tokens
    if left:
        assert _tokens(engine, " ".join([*kept, left[0]])) > pre.max_caption_tokens
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ids = pre.caption_ids(text)
    assert (len(ids) == pre.max_caption_tokens) == bool(left) or _tokens(engine, text) == pre.max_caption_tokens


def test_search_lists_the_words_it_did_not_encode(http, engine):
    """A query up to max_query_chars is answered; the words past the encoder's 32 tokens are
    listed in query.not_encoded (cached answers too), and one character more is a 422 naming the limit."""
    budget = engine.bundle.text_preprocessor.max_caption_tokens
    assert budget == 32
    text = " ".join(["red circle blue square green star"] * 20)[:512]
    for cached in (False, True):
        r = http.post("/search", json={"query": text, "k": 3})
        assert r.status_code == 200, r.text[:300]
        body = r.json()
        assert body["cache"]["results"] == ("hit" if cached else "miss")
        words = text.split()
        assert body["query"]["not_encoded"] == words[budget:][:50] and len(words[budget:]) == 59  # listed up to 50
        assert [w["word"] for w in body["query"]["left_out"]] == list(dict.fromkeys(words[budget:]))  # each word once
    short = http.post("/search", json={"query": "a red circle +star", "k": 3}).json()
    assert short["query"]["not_encoded"] == []
    err = _error(http.post("/search", json={"query": text + "x"}), 422)
    assert err.detail == "query is 513 characters; the limit is 512 (LEXVLA_MAX_QUERY_CHARS)"


def test_embed_sparse_refuses_a_text_past_the_budget_unless_truncate(http):
    text = " ".join(["red circle blue square green star"] * 20)[:512]
    err = _error(http.post("/embed_sparse", json={"inputs": ["a red circle", text]}), 422)
    assert err.detail.startswith("inputs[1] is longer than the text encoder reads (32 tokens): 59 words would not be "
                                 "encoded (blue, square, green, star, red and 54 more)"), err.detail  # fmt: skip
    assert err.errors[0].loc == ["body", "inputs"] and "truncate: true" in err.detail
    r = http.post("/embed_sparse", json={"inputs": [text], "format": "words", "truncate": True})
    assert r.status_code == 200, r.text[:300]
    fits = " ".join(text.split()[:32])
    assert r.json() == http.post("/embed_sparse", json={"inputs": [fits], "format": "words"}).json()
    err = _error(http.post("/embed_sparse", json={"inputs": text + "x", "truncate": True}), 422)
    assert err.detail == "inputs[0] is 513 characters; the limit is 512 (LEXVLA_MAX_QUERY_CHARS)"


# ---- one pixel limit -------------------------------------------------------------------------
def _png_declaring(width: int, height: int) -> bytes:
    """A 1x1 PNG whose header declares ``width`` x ``height``: refused from the header alone."""
    import struct
    import zlib

    data = bytearray(_png(Image.new("L", (1, 1))))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


@pytest.mark.parametrize(("width", "height"), [(7000, 7000), (13_000, 13_000), (30_000, 30_000), (65_535, 65_535)])
def test_one_pixel_limit_and_one_message_whatever_the_size(served, width, height):
    """Past Pillow's own limit (178,956,970 pixels) as under it: a 413 naming the configured limit."""
    srv = served(max_pixels=40_000_000)
    data = _png_declaring(width, height)
    with srv.client() as http:
        for route in ("/encode", "/search/image"):
            err = _error(http.post(route, files={"file": ("x.png", data, "image/png")}), 413)
            assert err.detail == f"upload: too large: {width}x{height} pixels exceeds the limit of 40000000", err.detail
        err = _error(http.post("/embed_sparse/images", files=[("file", ("x.png", data, "image/png"))]), 413)
        assert err.detail == f"file 0 ('x.png'): upload: too large: {width}x{height} pixels exceeds the limit of 40000000"


def test_the_pixel_limit_stays_under_pillows():
    from pydantic import ValidationError

    from service.config import PILLOW_MAX_PIXELS, Settings

    assert PILLOW_MAX_PIXELS == 2 * Image.MAX_IMAGE_PIXELS == 178_956_970
    assert Settings(max_pixels=PILLOW_MAX_PIXELS, _env_file=None).max_pixels == PILLOW_MAX_PIXELS
    with pytest.raises(ValidationError, match="less than or equal to 178956970"):
        Settings(max_pixels=PILLOW_MAX_PIXELS + 1, _env_file=None)
