"""The page itself: served locally, labelled, keyboard usable, phone width, the sentence preview, API keys."""

from __future__ import annotations

import base64
import io
import re

import httpx
import numpy as np
import pytest
import soundfile as sf
from playwright.sync_api import Browser, Page, expect

from rvc.api.routes_playground import STATIC_DIR
from rvc.processing.normalize import normalize_text
from rvc.processing.sentences import split_sentences
from tests.api.conftest import espeak_wav
from tests.playground.conftest import API_KEY
from tests.stack import Stack

PHONE = {"width": 390, "height": 844}

# Every visible control whose accessible name would be empty: no <label>, aria-label(ledby) or text.
UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea, button')]
  .filter((el) => el.offsetParent !== null && el.type !== 'hidden')
  .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
    && !el.getAttribute('aria-labelledby') && !(el.tagName === 'BUTTON' && el.textContent.trim()))
  .map((el) => el.outerHTML.slice(0, 120))"""

# The page's SSE reader fed CRLF line ends split across reads, a keep-alive comment and a two-line data field.
READ_SSE = """async (pieces) => {
  const { readEvents } = await import('/static/js/sse.js');
  const encoder = new TextEncoder();
  const body = new ReadableStream({ start(controller) {
    for (const piece of pieces) controller.enqueue(encoder.encode(piece));
    controller.close();
  } });
  const events = [];
  for await (const event of readEvents(new Response(body))) events.push(event);
  return events;
}"""

PARSE_WAV = """async (encoded) => {
  const { parseWav } = await import('/static/js/wav.js');
  const bytes = Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0)).buffer;
  const parsed = parseWav(bytes);
  return { rate: parsed.sampleRate, samples: Array.from(parsed.samples) };
}"""

ENCODE_WAV = """async (samples) => {
  const { encodeWav } = await import('/static/js/wav.js');
  const bytes = new Uint8Array(await encodeWav(Float32Array.from(samples), 24000).arrayBuffer());
  return btoa(String.fromCharCode(...bytes));
}"""


@pytest.fixture(scope="module")
def reference_clip() -> dict[str, object]:
    audio = espeak_wav("This is the reference voice, speaking clearly for a few seconds.")
    return {"name": "reference.wav", "mimeType": "audio/wav", "buffer": audio}


def test_page_and_everything_it_loads_come_from_the_gateway(stack: Stack) -> None:
    page = httpx.get(f"{stack.base_url}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-cache"
    files = sorted(path for path in STATIC_DIR.rglob("*") if path.is_file())
    assert {"index.html", "playground.css", "main.js"} <= {path.name for path in files}
    for path in files:
        text = path.read_text()
        assert "://" not in text.replace("data:,", ""), f"{path.name} refers to another origin"
        for module in re.findall(r'from "\./([\w.]+)"', text):
            assert (path.parent / module).is_file(), f"{path.name} imports a missing {module}"
        served = httpx.get(f"{stack.base_url}/static/{path.relative_to(STATIC_DIR).as_posix()}")
        assert served.status_code == 200 and served.content == path.read_bytes()
        if path.suffix == ".js":
            assert "javascript" in served.headers["content-type"]  # module scripts need a JS MIME type
    assert httpx.get(f"{stack.base_url}/static/../routes_playground.py").status_code == 404


def test_sentence_preview_is_the_pipelines_own_split(stack: Stack) -> None:
    text = "  Dr. Smith arrived at 3 p.m. today. Did he? Yes!  新しい文です。次の文。 "
    preview = httpx.post(f"{stack.base_url}/sentences", json={"text": text}).json()
    spoken = normalize_text(text.strip())
    assert preview["normalized_text"] == spoken and "three PM" in spoken
    assert preview["sentences"] == split_sentences(spoken) and len(preview["sentences"]) == 5
    assert preview["characters"] == len(text.strip())
    assert preview["max_text_chars"] == stack.settings.max_text_chars


def test_page_reads_sse_and_wav_as_the_server_writes_them(page: Page) -> None:
    pieces = ['event: start\r', '\ndata: {"a": 1}\r\n\r', '\n: ping\r\n\r\nevent: chunk\r\ndata: x\r\n',
              'data: y\r\n\r\n', "data: last"]
    assert page.evaluate(READ_SSE, pieces) == [
        {"event": "start", "data": '{"a": 1}'}, {"event": "chunk", "data": "x\ny"}, {"event": "message", "data": "last"},
    ]
    rng = np.random.default_rng(0)
    stereo = (0.5 * rng.uniform(-1, 1, size=(600, 2))).astype(np.float32)
    for subtype, tolerance in (("PCM_16", 1 / 32768), ("PCM_24", 1 / 8388608), ("FLOAT", 1e-7)):
        buffer = io.BytesIO()
        sf.write(buffer, stereo, 22050, format="WAV", subtype=subtype)
        decoded, _ = sf.read(io.BytesIO(buffer.getvalue()), dtype="float64")
        parsed = page.evaluate(PARSE_WAV, base64.b64encode(buffer.getvalue()).decode())
        assert parsed["rate"] == 22050
        np.testing.assert_allclose(parsed["samples"], decoded.mean(axis=1), atol=tolerance)  # mono: channel mean
    mono = 0.9 * np.sin(np.arange(500) / 7.0)
    written = base64.b64decode(page.evaluate(ENCODE_WAV, mono.tolist()))
    read, rate = sf.read(io.BytesIO(written), dtype="float64")
    assert rate == 24000 and sf.info(io.BytesIO(written)).subtype == "PCM_16"
    np.testing.assert_allclose(read, mono, atol=2 / 32768)  # written at 32767 full scale, read at 1/32768


def test_phone_width_labels_and_keyboard_only_tts(
    browser: Browser, stack: Stack, reference_clip: dict[str, object]
) -> None:
    context = browser.new_context(viewport=PHONE)
    try:
        page = context.new_page()
        page.goto(f"{stack.base_url}/")
        page.wait_for_selector("body[data-ready='true']")
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        assert page.evaluate(UNLABELLED) == []
        # the count and the sentence split follow the text as it is typed
        page.fill("#text", "")
        page.focus("#text")
        page.keyboard.type("First one. Second one!")
        expect(page.locator("#sentence-list li")).to_have_text(["First one.", "Second one!"])
        expect(page.locator("#text-count")).to_contain_text(f"22 of {stack.settings.max_text_chars} characters")
        page.set_input_files("#reference-file", reference_clip)
        # keyboard only from here: the mode by arrow key, generate with Ctrl+Enter in the text box
        page.focus("input[name='mode'][value='both']")
        page.keyboard.press("ArrowDown")
        assert page.is_checked("input[name='mode'][value='tts']")
        expect(page.locator("#rvc-set")).to_be_hidden()
        page.focus("#text")
        page.keyboard.press("Control+Enter")
        page.wait_for_selector("#output[data-state='done']", timeout=180_000)
        output = page.locator("#output")
        assert output.get_attribute("data-sample-rate") == "16000"  # Spark-TTS's own rate: no RVC
        assert output.get_attribute("data-chunks") == "2"
        rvc_times = page.locator("#timings tbody td:nth-child(5)").all_inner_texts()
        assert rvc_times == ["0.00", "0.00"]
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    finally:
        context.close()


def test_api_key_is_asked_for_kept_in_the_tab_and_sent_as_bearer(browser: Browser, keyed_server: str) -> None:
    served = httpx.get(f"{keyed_server}/")
    assert served.status_code == 200, (
        "the page must load without a key (a browser cannot send one when it opens a URL): "
        f"rvc.api.auth must leave '/' and '/static/' open; got {served.status_code}"
    )
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{keyed_server}/")
        page.wait_for_selector("body[data-ready='true']")
        refusal = httpx.get(f"{keyed_server}/config").json()["error"]["message"]
        expect(page.locator("#err-api_key")).to_have_text(refusal)
        expect(page.locator("#st-workers")).to_contain_text("needs the API key")
        expect(page.locator("#format-field")).to_be_hidden()  # /openapi.json is behind the key too
        page.fill("#api-key", API_KEY)
        with page.expect_request(lambda request: request.url.endswith("/status")) as sent:
            page.press("#api-key", "Enter")
        assert sent.value.headers.get("authorization") == f"Bearer {API_KEY}"
        expect(page.locator("#st-workers")).to_have_text("1 of 1 alive, 0 busy")
        expect(page.locator("#err-api_key")).to_be_hidden()
        expect(page.locator("#format-field")).to_be_visible()  # the server's features, read with the key
        assert page.evaluate("sessionStorage.getItem('voice-playground.api-key')") == API_KEY
        assert page.evaluate("localStorage.length") == 0
        page.reload()
        page.wait_for_selector("body[data-ready='true']")
        assert page.input_value("#api-key") == API_KEY  # the same tab keeps it
        fresh = context.new_page()  # a new tab starts without it
        fresh.goto(f"{keyed_server}/")
        fresh.wait_for_selector("body[data-ready='true']")
        assert fresh.input_value("#api-key") == ""
    finally:
        context.close()


def test_a_designed_voice_replaces_the_clip(page: Page, reference_clip: dict[str, object]) -> None:
    """Choosing a gender sends the attributes instead of the uploaded clip (the API takes one or the other)."""
    expect(page.locator("#p-gender option")).to_have_text(["off (clone the clip)", "female", "male"])
    page.fill("#text", "A voice from attributes.")
    page.set_input_files("#reference-file", reference_clip)
    page.check("input[name='mode'][value='tts']")
    page.select_option("#p-gender", "female")
    page.select_option("#p-pitch", "high")
    with page.expect_request(lambda request: request.method == "POST" and "/synthesize" in request.url) as sent:
        page.click("#generate")
    body = sent.value.post_data_buffer or b""
    assert b'name="gender"' in body and b'name="pitch"' in body and b'name="reference_audio"' not in body
    page.wait_for_selector("#output[data-state='done']", timeout=180_000)
    assert page.locator("#output").get_attribute("data-sample-rate") == "16000"
    assert page.console_errors == []  # type: ignore[attr-defined]
