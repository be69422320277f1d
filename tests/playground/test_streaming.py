"""The playground's streaming controls on the real stack: granularity (sentence / chunk) and type as you go.

Sentence mode must keep playing exactly as before with the new controls on the page, and a server
without chunk mode or /ws/synthesize must be told apart from a broken one: the page says what the
server answered. The chunk-mode and WebSocket playback tests need a server with those routes and are
skipped (with that reason) on one without them.
"""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.api.conftest import espeak_wav
from tests.playground.test_playground import SYNTHESIS_TIMEOUT_MS, clip, output_data
from tests.stack import Stack

TEXT = "Hello there. How are you today?"
TYPED = "The first thing I say is short. Then comes a second one"


@pytest.fixture(scope="module")
def reference_audio() -> bytes:
    return espeak_wav("This is the reference voice, speaking clearly for a few seconds.")


def has_websocket_route(stack: Stack) -> bool:
    # the socket's protocol is documented at GET /ws/synthesize (OpenAPI lists no WebSocket routes)
    spec = httpx.get(f"{stack.base_url}/openapi.json", timeout=30).json()
    return "/ws/synthesize" in spec["paths"]


def streams_by_chunk(stack: Stack) -> bool:
    spec = httpx.get(f"{stack.base_url}/openapi.json", timeout=30).json()
    return "granularity" in str(spec["paths"]["/synthesize/sse"]) or "granularity" in str(spec["components"])


def needs_websocket(stack: Stack) -> None:
    if not has_websocket_route(stack):
        pytest.skip("needs /ws/synthesize")


def test_streaming_controls_default_to_sentence_and_hide_for_rvc_only(page: Page) -> None:
    expect(page.locator("#granularity")).to_have_value("sentence")
    options = page.locator("#granularity option")
    assert [options.nth(index).get_attribute("value") for index in range(options.count())] == ["sentence", "chunk"]
    expect(page.locator("#live")).not_to_be_checked()
    expect(page.locator("#chunk-timings")).to_be_hidden()
    page.check("input[name='mode'][value='rvc']")
    expect(page.locator("#stream-set")).to_be_hidden()
    page.check("input[name='mode'][value='tts']")
    expect(page.locator("#stream-set")).to_be_visible()


def test_sentence_mode_still_plays_each_sentence_and_sends_no_granularity(
    page: Page, reference_audio: bytes
) -> None:
    page.fill("#text", TEXT)
    page.set_input_files("#reference-file", clip(reference_audio))
    page.select_option("#granularity", "sentence")
    with page.expect_request("**/synthesize/sse") as sent:
        page.click("#generate")
    assert b"granularity" not in (sent.value.post_data_buffer or b"")  # the default is not sent: old servers agree
    page.wait_for_selector("#output[data-state='done']", timeout=SYNTHESIS_TIMEOUT_MS)
    data = output_data(page)
    assert data["chunks"] == data["scheduled"] == "2"
    assert int(data["samples"]) / int(data["sampleRate"]) == pytest.approx(float(data["audioDuration"]), abs=2e-3)
    expect(page.locator("#chunk-timings")).to_be_hidden()
    expect(page.locator("#err-granularity")).to_be_hidden()
    assert page.console_errors == []  # type: ignore[attr-defined]


def test_chunk_mode_on_a_server_without_it_says_so_and_still_plays(
    page: Page, stack: Stack, reference_audio: bytes
) -> None:
    if streams_by_chunk(stack):
        pytest.skip("this server streams by chunk: the fallback is for servers without granularity")
    page.fill("#text", TEXT)
    page.set_input_files("#reference-file", clip(reference_audio))
    page.select_option("#granularity", "chunk")
    page.click("#generate")
    page.wait_for_selector("#output[data-state='done']", timeout=SYNTHESIS_TIMEOUT_MS)
    expect(page.locator("#err-granularity")).to_contain_text("ignored granularity=chunk")
    assert output_data(page)["chunks"] == "2"  # whole sentences, played as before


def test_type_as_you_go_on_a_missing_route_shows_what_the_server_answered(page: Page, stack: Stack) -> None:
    # a path no server has: the handshake fails and the page asks the same path over HTTP
    answer = httpx.get(f"{stack.base_url}/ws/absent", timeout=30)
    message = answer.json()["error"]["message"]
    problem = page.evaluate("""async () => {
      const { LiveSession } = await import('/static/js/live.js');
      return await new Promise((resolve) => {
        const on = { ready() {}, sentence() {}, audio() {}, done() {}, error() {}, closed: (info) => resolve(info) };
        new LiveSession({ path: '/ws/absent', start: {}, textarea: document.getElementById('text'), on }).open();
      });
    }""")
    assert problem["finished"] is False
    assert problem["problem"].startswith("The server did not open /ws/absent")
    assert message in problem["problem"]
    if not has_websocket_route(stack):  # the page's own control, against this server
        page.check("#live")
        page.click("#generate")
        expect(page.locator("#err-live")).to_contain_text("The server did not open /ws/synthesize", timeout=30_000)
        expect(page.locator("#output")).to_have_attribute("data-state", "error")
        expect(page.locator("#generate")).to_be_enabled()


def pieces_add_up(page: Page) -> dict[str, str]:
    data = output_data(page)
    rows = page.locator("#chunk-timings tbody tr")
    expect(rows).to_have_count(int(data["chunks"]))
    audio = sum(float(rows.nth(index).locator("td").nth(3).inner_text()) for index in range(rows.count()))
    rate = int(data["sampleRate"])
    assert int(data["samples"]) / rate == pytest.approx(float(data["audioDuration"]), abs=2e-3)
    assert audio == pytest.approx(int(data["samples"]) / rate, abs=0.01 * rows.count())  # rounded per row
    assert float(data["firstAudioS"]) < float(data["totalTime"])
    assert "underruns" in data
    return data


def test_chunk_mode_plays_pieces_at_their_offsets(page: Page, stack: Stack, reference_audio: bytes) -> None:
    needs_websocket(stack)  # chunk mode lands with the WebSocket route
    page.fill("#text", TEXT)
    page.set_input_files("#reference-file", clip(reference_audio))
    page.select_option("#granularity", "chunk")
    page.click("#generate")
    page.wait_for_selector("#output[data-state='done']", timeout=SYNTHESIS_TIMEOUT_MS)
    data = pieces_add_up(page)
    assert int(data["chunks"]) > 2  # more pieces than sentences
    expect(page.locator("#err-granularity")).to_be_hidden()
    assert page.console_errors == []  # type: ignore[attr-defined]


def test_type_as_you_go_speaks_sentences_as_they_are_typed(
    page: Page, stack: Stack, reference_audio: bytes
) -> None:
    needs_websocket(stack)
    stored = httpx.post(
        f"{stack.base_url}/config/reference-audio", files={"reference_audio": ("r.wav", reference_audio, "audio/wav")},
        timeout=60,
    )
    assert stored.status_code == 200, stored.text
    try:
        page.fill("#text", "")
        page.check("#live")
        page.click("#generate")
        expect(page.locator("#progress")).to_contain_text("Connected", timeout=30_000)
        page.locator("#text").press_sequentially(TYPED, delay=15)
        expect(page.locator("#timings tbody tr")).to_have_count(1, timeout=SYNTHESIS_TIMEOUT_MS)  # cut at its period
        page.locator("#text").press("Enter")  # flush: the unfinished second sentence is spoken too
        expect(page.locator("#timings tbody tr")).to_have_count(2, timeout=SYNTHESIS_TIMEOUT_MS)
        page.wait_for_function(
            "Number(document.getElementById('output').dataset.chunks) >= 2", timeout=SYNTHESIS_TIMEOUT_MS
        )
        page.click("#stop")  # close: finish the audio, then done
        page.wait_for_selector("#output[data-state='done']", timeout=SYNTHESIS_TIMEOUT_MS)
        pieces_add_up(page)
        sentences = page.locator("#timings tbody tr td:nth-child(2)").all_inner_texts()
        assert sentences[0] == "The first thing I say is short."
        assert "second one" in sentences[1]
        assert page.console_errors == []  # type: ignore[attr-defined]
    finally:
        httpx.delete(f"{stack.base_url}/config/reference-audio", timeout=60)


def test_player_joins_pieces_at_their_sample_offsets(page: Page) -> None:
    heard = page.evaluate("""async () => {
      const { StreamPlayer } = await import('/static/js/player.js');
      const { pcm16ToFloat } = await import('/static/js/wav.js');
      const player = new StreamPlayer();
      const pcm = new Int16Array([16384, -16384, 8192]);
      player.addSamples(pcm16ToFloat(pcm.buffer), 8000, 0);
      player.addSamples(Float32Array.from([0.125, 0.25]), 8000, 3);
      player.addSamples(new Float32Array(0), 8000, 5);
      return { joined: Array.from(player.joined()), length: player.length, scheduled: player.sources.length };
    }""")
    assert heard == {"joined": [0.5, -0.5, 0.25, 0.125, 0.25], "length": 5, "scheduled": 2}
