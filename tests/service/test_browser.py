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
    page.fill("#q", "a red circle")
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
