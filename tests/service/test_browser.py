"""The web page in real headless Chromium: search, chips, word-space edits, heatmap toggle."""
from __future__ import annotations

import shutil

import pytest

pytestmark = pytest.mark.integration
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="module")
def page(server):
    sync_api = pytest.importorskip("playwright.sync_api")
    if not shutil.which(CHROMIUM):
        pytest.skip("no chromium binary")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        pg = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        pg.on("pageerror", lambda exc: errors.append(str(exc)))
        pg.goto(server.url + "/")
        yield pg
        assert errors == []
        browser.close()


def test_search_chips_edits_and_heatmap(page, tmp_path):
    # the untrained prior (top-5 ImageNet classes) writes "star" on 5 of the 40 shapes, "circle" on 3
    page.fill("#q", "a blue star")
    page.click("#go")
    page.wait_for_selector(".card .chip")
    cards = page.locator(".card")
    assert cards.count() >= 5
    first = cards.first
    assert first.locator("img").evaluate("img => img.complete && img.naturalWidth > 0")
    assert page.locator("#query-words .qword").count() > 0
    page.screenshot(path=str(tmp_path / "results.png"), full_page=True)

    word = first.locator(".chip").first.get_attribute("data-word")
    first.locator(".chip .word").first.click()  # heatmap of that word on this image
    page.wait_for_function("() => document.querySelector('.card img').src.includes('/heatmap?word=')")
    page.wait_for_function("() => document.querySelector('.card img').complete && document.querySelector('.card img').naturalWidth > 0")
    page.screenshot(path=str(tmp_path / "heatmap.png"), full_page=True)

    # Queries are the caption's own words now, so a matched word can be the only one: boost, then exclude it.
    page.locator(".card .chip button.boost").first.click()
    page.wait_for_selector("#edits .tag.boost")
    page.wait_for_function("() => !document.querySelector('#status').textContent.startsWith('searching')")
    word = page.locator(".card .chip").first.get_attribute("data-word")
    page.locator(".card").first.locator(".chip button.exclude").first.click()  # exclude it from the word space
    page.wait_for_selector(f"#edits .tag.exclude:text('{word}')")
    page.wait_for_function("() => !document.querySelector('#status').textContent.startsWith('searching')")
    chips = page.eval_on_selector_all(".card .chip", "els => els.map(e => e.dataset.word)")
    assert word not in chips

    page.check("#heat-toggle")
    page.wait_for_function("() => [...document.querySelectorAll('.card img')].every(i => i.src.includes('heatmap'))")
    page.wait_for_timeout(1500)
    page.screenshot(path=str(tmp_path / "edited.png"), full_page=True)
    print("screenshots:", tmp_path)


def test_error_is_shown_not_thrown(page):
    page.fill("#q", "-red")
    page.click("#go")
    page.wait_for_selector("#status.error")
    assert "422" in page.text_content("#status")


def test_words_past_the_token_budget_are_shown_as_not_read(page):
    text = " ".join(["red circle blue square green star"] * 8)  # 48 words, one token each: 16 past the 32
    page.fill("#q", text)
    page.click("#go")
    page.wait_for_selector("#query-words .qword.unread")
    unread = page.eval_on_selector_all("#query-words .qword.unread", "els => els.map(e => e.textContent)")
    assert unread == text.split()[32:]


def _settled(page) -> None:
    page.wait_for_function("() => !/^searching/.test(document.querySelector('#status').textContent)")


def _ids(page) -> list[str]:
    return page.eval_on_selector_all(".card", "els => els.map(e => e.dataset.id)")


def test_search_lives_in_the_url_with_back_and_forward(page, server, tmp_path):
    page.goto(server.url + "/")
    page.fill("#q", "a circle star")
    page.click("#go")
    page.wait_for_selector(".card")
    _settled(page)
    assert "q=a+circle+star" in page.url
    first = _ids(page)
    word = page.locator(".card .chip").first.get_attribute("data-word")
    page.locator(".card .chip button.exclude").first.click()
    page.wait_for_selector(f"#edits .tag.exclude:text('{word}')")
    _settled(page)
    assert f"exclude={word}" in page.url
    edited = _ids(page)
    assert edited != first
    page.screenshot(path=str(tmp_path / "url-state.png"), full_page=True)

    page.go_back()  # the search before the edit, from the URL alone
    page.wait_for_function("n => document.querySelectorAll('#edits .tag').length === n", arg=0)
    _settled(page)
    assert _ids(page) == first and "exclude" not in page.url
    page.go_forward()
    page.wait_for_selector(f"#edits .tag.exclude:text('{word}')")
    _settled(page)
    assert _ids(page) == edited

    shared = page.url + "&heat=1"  # a bookmarked search opens as it was, heatmaps on
    page.goto(shared)
    page.wait_for_selector(".card img[src*='heatmap']")
    assert page.input_value("#q") == "a circle star" and page.is_checked("#heat-toggle") and _ids(page) == edited


def test_more_like_this_on_a_hit(page, server, tmp_path):
    page.goto(server.url + "/?q=a+circle")
    page.wait_for_selector(".card")
    _settled(page)
    target = _ids(page)[1]
    page.locator(f".card[data-id='{target}'] button.like").click()
    page.wait_for_function("id => document.querySelector('#status').textContent.startsWith('like ' + id)", arg=target)
    ids = _ids(page)
    assert ids and target not in ids  # the image itself is left out of its neighbours
    assert "like=" in page.url and page.input_value("#q") == ""
    page.screenshot(path=str(tmp_path / "more-like-this.png"), full_page=True)
    page.go_back()
    page.wait_for_function("() => document.querySelector('#q').value === 'a circle'")


def test_search_by_uploaded_and_dropped_image(page, server, shape_images, tmp_path):
    page.goto(server.url + "/")
    image = shape_images / "blue_star_0.png"
    page.set_input_files("#image-file", str(image))
    page.wait_for_function("() => document.querySelector('#status').textContent.startsWith('image blue_star_0.png')")
    assert _ids(page)[0] == "blue_star_0.png"  # an indexed image finds itself first
    assert page.locator("#query-words .qword").count() > 0  # the image's own words
    page.screenshot(path=str(tmp_path / "upload.png"), full_page=True)

    other = shape_images / "red_circle_1.png"
    data = list(other.read_bytes())
    page.evaluate(
        """(bytes) => {
            const dt = new DataTransfer();
            dt.items.add(new File([new Uint8Array(bytes)], 'red_circle_1.png', {type: 'image/png'}));
            document.querySelector('#drop').dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
        }""",
        data,
    )
    page.wait_for_function("() => document.querySelector('#status').textContent.startsWith('image red_circle_1.png')")
    assert _ids(page)[0] == "red_circle_1.png"
    page.screenshot(path=str(tmp_path / "drop.png"), full_page=True)


def test_heatmap_toggle_encodes_each_hit_once(page, server, tmp_path):
    """Toggling heatmaps off and on again encodes no image again (the PNG is in the browser's
    cache, the patch grid in Redis); the first round may already find grids cached by others."""
    from service import metrics

    def served() -> tuple[float, float]:
        return metrics.CACHE.labels("heatmap", "hit")._value.get(), metrics.CACHE.labels("heatmap", "miss")._value.get()

    all_heatmaps = "() => [...document.querySelectorAll('.card img')].every(i => i.src.includes('heatmap') && i.complete)"
    page.goto(server.url + "/?q=a+circle&k=12")  # not the stars of the first test, whose heatmaps the browser holds
    page.wait_for_selector(".card")
    _settled(page)
    hits0, misses0 = served()
    page.check("#heat-toggle")
    page.wait_for_function(all_heatmaps)
    hits1, misses1 = served()
    assert 0 < (hits1 - hits0) + (misses1 - misses0) <= page.locator(".card").count()
    page.uncheck("#heat-toggle")
    page.check("#heat-toggle")
    page.wait_for_function(all_heatmaps)
    page.wait_for_timeout(500)
    assert served()[1] == misses1  # toggled again: no image encoded a second time
    page.screenshot(path=str(tmp_path / "heatmaps.png"), full_page=True)


def test_the_page_links_to_the_model_card(page, server):
    link = page.locator("footer a#model-card")
    assert link.is_visible()
    r = page.request.get(server.url + link.get_attribute("href"))
    assert r.status == 200 and "## Training data" in r.text()
