"""End to end in a real headless Chromium (Debian's chromium, driven by playwright): upload, click, read the answer.

Skipped, with the reason shown, where Chromium or playwright is not installed (`.ci/run` installs both).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dataset_builders.sources.synthetic import synthetic_categories

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Headless as root on a machine without network access: no sandbox, no GPU, no background connections.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
    )
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium chromium-driver)")
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS, viewport={"width": 1280, "height": 1100}
        )
        try:
            yield browser.new_page()
        finally:
            browser.close()


def test_upload_click_and_read_the_answer(page, demo_server, critter_image, tmp_path):
    from playwright.sync_api import expect

    page.set_default_timeout(TIMEOUT_MS)
    page.goto(demo_server.url)
    expect(page.get_by_text("Ready.")).to_be_visible()  # the model loaded when the page opened

    page.locator("input[type=file]").first.set_input_files(critter_image[0])
    expect(page.locator("img[alt]").first).to_be_visible()  # the upload's preview
    page.get_by_role("button", name="Recognize").click()

    prediction = page.locator("#prediction textarea")
    expect(prediction).not_to_have_value("")
    predicted = prediction.input_value()
    assert predicted in {category.name for category in synthetic_categories()}
    expect(page.get_by_text("Options (the 4 most similar categories)")).to_be_visible()
    # The options are the 4 most similar categories, so the top-5 bar chart shows the predicted one.
    expect(page.locator("#similarities")).to_contain_text(predicted)
    page.screenshot(path=tmp_path / "answer.png", full_page=True)

    # Bad input gets a message in the page: a typed list of one category (typing switches to the typed list).
    page.get_by_label("Typed candidate categories").press_sequentially("Zurul")
    expect(page.get_by_label("Candidate categories", exact=True)).to_have_value("Typed list (below)")
    page.get_by_role("button", name="Recognize").click()
    expect(page.get_by_text("Type at least two candidate categories").first).to_be_visible()
    page.screenshot(path=tmp_path / "bad-input.png")  # the viewport, where the message shows
    assert page.get_by_text("Traceback").count() == 0
