"""The playground driving the real stack: streamed synthesis, RVC only, API errors, the status panel."""

from __future__ import annotations

import os

import httpx
import numpy as np
import pytest
import soundfile as sf
from playwright.sync_api import Page, expect

from rvc.grpc.launcher import TritonServer
from rvc.processing.sentences import split_sentences
from tests.api.conftest import espeak_wav, wav_bytes
from tests.conftest import REPO_ROOT
from tests.stack import Stack

TEXT = "Hello there. How are you today?"
# The README's picture of the page; rewritten only when asked (UPDATE_DOCS=1), so a test run leaves the tree clean.
SCREENSHOT = REPO_ROOT / "docs" / "playground.png"
SYNTHESIS_TIMEOUT_MS = 180_000

# Plays the result element for a moment; returns how far it got (seconds).
PLAY_RESULT = """async () => {
  const audio = document.getElementById('result-audio');
  await audio.play();
  await new Promise((resolve) => setTimeout(resolve, 400));
  audio.pause();
  return audio.currentTime;
}"""


@pytest.fixture(scope="module")
def reference_audio() -> bytes:
    return espeak_wav("This is the reference voice, speaking clearly for a few seconds.")


def clip(audio: bytes, name: str = "reference.wav") -> dict[str, object]:
    return {"name": name, "mimeType": "audio/wav", "buffer": audio}


def output_data(page: Page) -> dict[str, str]:
    return page.evaluate("({...document.getElementById('output').dataset})")


def api_error(stack: Stack, reference: bytes, **fields: str) -> str:
    """The message the API itself gives for these fields, to compare with what the page shows."""
    response = httpx.post(
        f"{stack.base_url}/synthesize/sse", data=fields, files={"reference_audio": ("r.wav", reference, "audio/wav")},
        timeout=60,
    )
    assert response.status_code == 400, response.text
    return response.json()["error"]["message"]


def test_synthesis_streams_plays_and_shows_timings(page: Page, stack: Stack, reference_audio: bytes) -> None:
    expect(page.locator("#st-demo")).to_contain_text("random weights")  # the demo warning, in plain words
    page.fill("#text", TEXT)
    page.set_input_files("#reference-file", clip(reference_audio))
    expect(page.locator("#clip")).to_be_visible()
    page.fill("#seed", "7")
    page.click("#generate")
    page.wait_for_selector("#output[data-state='done']", timeout=SYNTHESIS_TIMEOUT_MS)

    data = output_data(page)
    samples, rate = int(data["samples"]), int(data["sampleRate"])
    assert rate == 40000  # the demo RVC voice's rate
    assert data["chunks"] == data["scheduled"] == "2"  # each sentence decoded and scheduled on the Web Audio clock
    assert data["audioContext"] == "running"
    assert samples / rate == pytest.approx(float(data["audioDuration"]), abs=2e-3)  # what the server made
    assert float(data["audioElementDuration"]) == pytest.approx(samples / rate, abs=2e-3)
    assert float(data["firstAudioS"]) < float(data["totalTime"])  # sentence 1 played before the request ended
    assert page.evaluate(PLAY_RESULT) > 0
    assert int(page.get_attribute("#waveform", "data-samples")) == samples
    assert float(page.get_attribute("#waveform", "data-peak")) > 0

    rows = page.locator("#timings tbody tr")
    expect(rows).to_have_count(2)
    for index, sentence in enumerate(split_sentences(TEXT)):
        cells = rows.nth(index).locator("td").all_inner_texts()
        assert cells[:2] == [str(index + 1), sentence]
        assert all(float(value) > 0 for value in cells[2:]), cells  # audio, TTS and RVC seconds
    expect(page.locator("#total")).to_contain_text(f"Total {float(data['totalTime']):.2f} s")
    expect(page.locator("#progress")).to_contain_text("Seed 7")

    with page.expect_download() as download:
        page.click("#download")  # WAV, built in the page from what was played
    wav, wav_rate = sf.read(download.value.path(), dtype="float32")
    assert (len(wav), wav_rate) == (samples, rate)

    shot = page.screenshot(full_page=True)
    assert shot.startswith(b"\x89PNG") and len(shot) > 10_000
    if os.environ.get("UPDATE_DOCS") == "1":
        SCREENSHOT.write_bytes(shot)

    # another format: the server encodes the same request (same seed) again
    page.select_option("#format", "flac")
    with page.expect_download(timeout=SYNTHESIS_TIMEOUT_MS) as download:
        page.click("#download")
    assert download.value.suggested_filename == "voice.flac"
    flac, flac_rate = sf.read(download.value.path(), dtype="float32")
    assert flac_rate == rate and abs(len(flac) - samples) < rate * 0.05  # one file, joined with short crossfades
    assert page.console_errors == []  # type: ignore[attr-defined]


def test_api_errors_show_next_to_their_field(page: Page, stack: Stack, reference_audio: bytes) -> None:
    page.set_input_files("#reference-file", clip(reference_audio))
    page.fill("#p-pitch_shift", "99")
    page.click("#generate")
    expect(page.locator("#err-pitch_shift")).to_have_text(api_error(stack, reference_audio, text=TEXT, pitch_shift="99"))
    assert page.get_attribute("#p-pitch_shift", "aria-invalid") == "true"
    assert page.evaluate("document.activeElement.id") == "p-pitch_shift"  # keyboard users land on it
    expect(page.locator("#err-general")).to_be_hidden()
    expect(page.locator("#output")).to_have_attribute("data-state", "error")

    page.click("#p-pitch_shift + button.reset")
    page.fill("#text", "   ")
    page.click("#generate")
    expect(page.locator("#err-text")).to_have_text(api_error(stack, reference_audio, text="   "))
    expect(page.locator("#err-pitch_shift")).to_be_hidden()

    short = wav_bytes((0.3 * np.sin(np.arange(3200) / 16000 * 2 * np.pi * 140)).astype(np.float32), 16000)
    page.fill("#text", TEXT)
    page.set_input_files("#reference-file", clip(short, "short.wav"))
    page.click("#generate")
    expected = api_error(stack, short, text=TEXT)
    expect(page.locator("#err-reference_audio")).to_have_text(expected)
    assert "reference_audio" in expected


def test_rvc_only_converts_a_microphone_recording(page: Page) -> None:
    page.check("input[name='mode'][value='rvc']")
    expect(page.locator("#text")).to_be_hidden()
    expect(page.locator("#generate")).to_have_text("Convert")
    page.click("#record")  # chromium's fake microphone: a beeping test signal
    expect(page.locator("#record")).to_have_attribute("aria-pressed", "true")
    page.wait_for_timeout(1500)
    page.click("#record")
    expect(page.locator("#clip")).to_have_attribute("data-name", "recording.wav")
    page.wait_for_selector("#clip[data-duration]")
    recorded = float(page.get_attribute("#clip", "data-duration"))
    assert recorded >= 1.0
    page.click("#generate")
    page.wait_for_selector("#output[data-state='done']", timeout=SYNTHESIS_TIMEOUT_MS)
    data = output_data(page)
    assert int(data["sampleRate"]) == 40000
    assert int(data["samples"]) / 40000 == pytest.approx(recorded, abs=0.05)  # RVC keeps the clip's length
    cells = page.locator("#timings tbody tr td").all_inner_texts()
    assert cells[1] == "recording.wav" and float(cells[4]) > 0
    assert page.console_errors == []  # type: ignore[attr-defined]


def test_stop_ends_the_stream_and_the_server_drops_the_rest(
    page: Page, stack: Stack, reference_audio: bytes
) -> None:
    cancelled = httpx.get(f"{stack.base_url}/status").json()["requests"]["cancelled"]
    sentences = 12
    page.fill("#text", " ".join(f"Sentence number {index} of a long story." for index in range(sentences)))
    page.set_input_files("#reference-file", clip(reference_audio))
    page.click("#generate")
    page.wait_for_function(  # the first sentence is playing, the rest still being made
        "Number(document.getElementById('output').dataset.chunks) >= 1", timeout=SYNTHESIS_TIMEOUT_MS
    )
    page.click("#stop")
    expect(page.locator("#output")).to_have_attribute("data-state", "stopped")
    assert int(output_data(page)["chunks"]) < sentences
    expect(page.locator("#generate")).to_be_enabled()
    expect(page.locator("#st-requests")).to_contain_text(f"{cancelled + 1} cancelled", timeout=30_000)


def test_status_panel_says_which_rvc_profile_converts_and_the_parameters_offer_both(page: Page) -> None:
    expect(page.locator("#st-profile")).to_have_text("2026 (RVC_PROFILE)")
    choices = page.locator("#p-rvc_profile option")
    expect(choices).to_have_count(3)
    assert [choices.nth(i).get_attribute("value") for i in range(3)] == ["", "2026", "2024"]


def test_status_panel_turns_red_when_triton_stops(page: Page, stack: Stack) -> None:
    panel = page.locator("#status")
    expect(panel).to_have_attribute("data-health", "ready")
    expect(page.locator("#st-workers")).to_have_text(f"{stack.settings.rvc_workers} of {stack.settings.rvc_workers} "
                                                     "alive, 0 busy")
    stack.triton.stop()
    try:
        expect(panel).to_have_attribute("data-triton", "down", timeout=30_000)
        expect(panel).to_have_attribute("data-health", "degraded")
        expect(page.locator("#status-summary")).to_contain_text("Spark-TTS on Triton is down")
        expect(page.locator("#st-triton")).to_contain_text("down")
        red = page.evaluate("getComputedStyle(document.documentElement).getPropertyValue('--bad').trim()")
        assert red == "#b3261e"
        assert page.evaluate("getComputedStyle(document.getElementById('status')).borderTopColor") == "rgb(179, 38, 30)"
    finally:
        stack.triton = TritonServer(stack.triton.config).start()
    expect(panel).to_have_attribute("data-health", "ready", timeout=90_000)
    expect(panel).to_have_attribute("data-triton", "ready")

