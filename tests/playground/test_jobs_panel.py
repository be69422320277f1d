"""The playground's jobs panel: the form's request sent as a background job, its progress bar filled as it runs."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.api.conftest import espeak_wav

JOB_TIMEOUT_MS = 240_000


def test_a_background_job_shows_its_progress_and_offers_its_audio(page: Page) -> None:
    page.fill("#text", "The panel lists this job. Its bar fills as each sentence is done.")
    page.set_input_files(
        "#reference-file",
        {"name": "reference.wav", "mimeType": "audio/wav", "buffer": espeak_wav("A clear reference voice speaking.")},
    )
    page.fill("#seed", "3")
    page.click("#submit-job")
    item = page.locator("#job-list .job").first
    expect(item).to_be_visible()
    expect(item.locator(".job-text")).to_contain_text("The panel lists this job.")
    expect(item.locator("progress")).to_have_attribute("max", "1")
    expect(item).to_have_attribute("data-state", "done", timeout=JOB_TIMEOUT_MS)
    assert item.locator("progress").evaluate("bar => bar.value") == 1
    expect(item.locator(".job-facts")).to_contain_text("2 of 2 sentences")
    with page.expect_download() as download:
        item.locator(".job-audio").click()
    assert download.value.suggested_filename.endswith(".wav")
    expect(item.locator(".job-cancel")).to_have_count(0)
    assert page.console_errors == []  # type: ignore[attr-defined]  # collected by the page fixture
