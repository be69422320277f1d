// The playground page: wires the form to the API. Modes: both (TTS + RVC, streamed over /synthesize/sse),
// TTS only (the same stream with skip_rvc) and RVC only (/rvc with the chosen clip). Streaming by sentence or
// by chunk (granularity), or "type as you go" on the WebSocket /ws/synthesize (live.js).

import { ApiError, call, getJson, setApiKey, apiKey } from "./api.js";
import { ClipPicker } from "./clip.js";
import { LiveSession } from "./live.js";
import { clearErrors, showError } from "./errors.js";
import { JobsPanel } from "./jobs.js";
import { NO_FEATURES, detectFeatures } from "./features.js";
import { ParameterPanel } from "./params.js";
import { StreamPlayer, audioContext } from "./player.js";
import { readEvents } from "./sse.js";
import { StatusPanel } from "./status.js";
import { TextPreview } from "./text.js";
import { ResultView } from "./output.js";
import { base64ToBuffer, pcm16ToFloat } from "./wav.js";
import { SavedVoices, fillModelChoices } from "./voices.js";

const $ = (id) => document.getElementById(id);
const state = { features: NO_FEATURES, params: null, controller: null, player: null, lastRequest: null, live: null };
const view = new ResultView($("output"));

const clip = new ClipPicker({
  fileInput: $("reference-file"), recordButton: $("record"), recordState: $("record-state"), box: $("clip"),
  audio: $("clip-audio"), info: $("clip-info"), clearButton: $("clip-clear"),
  onError: (message) => showError({ field: "reference_audio", message }),
});
const savedVoices = new SavedVoices($("saved-voice-field"), $("saved-voice"), (baseline) => {
  state.params?.setBaseline(baseline);
});

function mode() {
  return document.querySelector('input[name="mode"]:checked').value;
}

function applyMode() {
  const current = mode();
  for (const block of document.querySelectorAll("[data-modes]")) {
    block.hidden = !block.dataset.modes.split(" ").includes(current)
      || (block === $("saved-voice-field") && !state.features.savedVoiceField);
  }
  const converting = current === "rvc";
  $("reference-legend").textContent = converting ? "Speech to convert" : "Reference voice";
  $("reference-label").textContent = converting
    ? "Clip to convert (WAV, FLAC, OGG or MP3)" : "Reference clip (WAV, FLAC, OGG or MP3)";
  $("generate").textContent = converting ? "Convert" : "Generate";
}

function requestFields(current, seed) {
  const fields = [];
  const add = (name, value) => value !== "" && value !== null && value !== undefined && fields.push([name, value]);
  const model = $("rvc-model").value;
  if (current === "rvc") {
    if (clip.file) fields.push(["audio", clip.file, clip.file.name]);
    if (state.features.savedVoiceField in state.features.conversionFields) {
      add(state.features.savedVoiceField, savedVoices.selected()); // its RVC model and settings
    }
    add(state.features.rvcField, model);
    fields.push(...state.params.changedFields(["rvc", "output"]));
  } else {
    add("text", $("text").value);
    const designing = state.params.designing();
    if (clip.file && !designing) fields.push(["reference_audio", clip.file, clip.file.name]);
    if (!designing) add("reference_text", $("reference_text").value.trim());
    if (state.features.savedVoiceField) add(state.features.savedVoiceField, savedVoices.selected());
    if (current === "both") add(state.features.rvcField, model);
    if (current === "tts") add("skip_rvc", "true");
    if ($("granularity").value === "chunk") add("granularity", "chunk"); // the default, sentence, is not sent
    fields.push(...state.params.changedFields(current === "tts" ? ["tts", "output"] : ["rvc", "tts", "output"]));
  }
  add("seed", seed);
  return fields;
}

function formData(fields) {
  const form = new FormData();
  for (const [name, value, filename] of fields) {
    if (filename) form.append(name, value, filename);
    else form.append(name, value);
  }
  return form;
}

// The end event's totals: sentence mode's {total_time, audio_duration}, chunk mode's {total_s, duration_s}.
function totals(end) {
  return { total_time: end.total_time ?? end.total_s, audio_duration: end.audio_duration ?? end.duration_s };
}

// One chunk-mode piece (SSE chunk event or WebSocket audio message) onto the player at its sample offset.
async function playPiece(player, piece, body) {
  if (body instanceof Float32Array) player.addSamples(body, piece.sample_rate, piece.sample_offset);
  else if (piece.format === "pcm") player.addSamples(pcm16ToFloat(body), piece.sample_rate, piece.sample_offset);
  else await player.addAt(body, piece.sample_offset);
  view.addPiece(piece, player);
}

async function streamSpeech(fields, signal, seed) {
  const chunked = fields.some(([name, value]) => name === "granularity" && value === "chunk");
  const response = await call("/synthesize/sse", { method: "POST", body: formData(fields), signal });
  const player = (state.player = new StreamPlayer());
  for await (const { event, data } of readEvents(response)) {
    const payload = JSON.parse(data);
    if (event === "start") {
      view.plan(payload.sentences);
      if (chunked && payload.granularity !== "chunk") {
        const message = "This server streams whole sentences only: it ignored granularity=chunk.";
        showError({ field: "granularity", message }, { focus: false });
      }
    } else if (event === "chunk" && "sample_offset" in payload) {
      const arrivedS = (performance.now() - view.started) / 1000;
      const piece = { ...payload, seq: payload.index, elapsed_s: payload.elapsed_s, arrivedS };
      await playPiece(player, piece, base64ToBuffer(payload.audio));
    } else if (event === "chunk") {
      await player.add(base64ToBuffer(payload.audio));
      view.addChunk(payload, player);
    } else if (event === "error") throw new ApiError(payload.error?.status || 500, payload.error);
    else if (event === "end") {
      view.finish(totals(payload), player, seed);
      return;
    }
  }
  throw new ApiError(0, { message: "The stream ended before its last sentence: the connection dropped." });
}

async function convertClip(fields, signal, seed) {
  const response = await call("/rvc", { method: "POST", body: formData(fields), signal });
  const bytes = await response.arrayBuffer();
  const player = (state.player = new StreamPlayer());
  const decoded = await player.add(bytes);
  const header = (name) => Number(response.headers.get(name));
  const duration = decoded.samples.length / decoded.sampleRate;
  view.plan([clip.file.name]);
  view.addChunk({ index: 0, text: clip.file.name, duration, tts_time: 0, rvc_time: header("X-RVC-Time") }, player);
  view.finish({ total_time: header("X-Total-Time"), audio_duration: duration }, player, seed);
}

// A value of the request's fields as the WebSocket's JSON wants it (the form sends text; JSON keeps types).
function typed(name, value) {
  const schema = state.features.synthesisFields[name] || state.features.parameterSchemas[name];
  if (name === "seed" || schema?.type === "integer" || schema?.type === "number") return Number(value);
  if (schema?.type === "boolean") return value === "true";
  return value;
}

// Type as you go: resolves when the session is done ("stopped" when hung up), rejects with the reason it failed.
function runLive(current, seed) {
  const start = { format: "pcm" };
  for (const [name, value, filename] of requestFields(current, seed)) {
    if (!filename && !["text", "granularity", "reference_audio"].includes(name)) start[name] = typed(name, value);
  }
  if (clip.file) {
    const message = "A clip cannot be sent over the socket: this session speaks with the saved voice or the "
      + "server's stored clip.";
    showError({ field: "live", message }, { focus: false });
  }
  const player = (state.player = new StreamPlayer());
  let failure = null;
  return new Promise((resolve, reject) => {
    state.live = new LiveSession({
      start,
      textarea: $("text"),
      on: {
        ready: () => view.say("Connected: each sentence is spoken as it ends; Enter speaks the rest now."),
        sentence: (message) => view.addSentence(message.index, message.text),
        audio: (message, body) => playPiece(player, message, body).catch((error) => {
          failure = new ApiError(0, { message: `a chunk could not be played: ${error.message}` });
        }),
        done: (message) => view.finish(totals(message), player, seed),
        error: (error) => {
          failure = new ApiError(error.status, error);
        },
        closed: ({ problem, finished }) => {
          if (failure) reject(failure);
          else if (problem) reject(new ApiError(0, { message: problem, field: "live" }));
          else resolve(finished ? "done" : "stopped");
        },
      },
    });
    state.live.open();
  });
}

async function generate() {
  if (state.controller) return; // one request at a time: Stop ends the running one
  clearErrors();
  state.player?.stop(); // silence what the previous result still has scheduled
  audioContext(); // inside the click: browsers allow sound to start only from a user gesture
  const current = mode();
  const seed = $("seed").value.trim() || String(Math.floor(Math.random() * 2 ** 31));
  const fields = requestFields(current, seed);
  const controller = (state.controller = new AbortController());
  $("generate").disabled = true;
  $("stop").disabled = false;
  const live = current !== "rvc" && $("live").checked;
  view.begin(current === "rvc" ? "Converting the clip…" : live ? "Opening the session…" : "Sending the text…");
  try {
    if (live) {
      if ((await runLive(current, seed)) === "stopped") view.stopped();
    } else if (current === "rvc") await convertClip(fields, controller.signal, seed);
    else await streamSpeech(fields, controller.signal, seed);
    state.lastRequest = { route: current === "rvc" ? "/rvc" : "/synthesize", fields };
  } catch (error) {
    if (error.name === "AbortError") {
      view.stopped();
    } else {
      showError(error);
      view.fail(`Failed: ${error.message}`);
    }
  } finally {
    if (state.controller === controller) state.controller = null;
    state.live = null;
    $("generate").disabled = false;
    $("stop").disabled = true;
  }
}

function stop() {
  if (state.live) {
    state.live.stop(); // speak what is typed, then done; a second Stop hangs up
    return;
  }
  state.controller?.abort();
  state.player?.stop();
}

function save(blob, name) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 60000);
}

async function download() {
  const format = state.features.formats ? $("format").value : "wav";
  if (format === "wav" || !state.lastRequest) {
    save(view.wav, "voice.wav");
    return;
  }
  clearErrors();
  const button = $("download");
  button.disabled = true;
  button.textContent = `Encoding ${format}…`;
  try {
    const fields = [...state.lastRequest.fields, ["format", format]];
    const response = await call(state.lastRequest.route, { method: "POST", body: formData(fields) });
    save(await response.blob(), `voice.${format.split("_")[0]}`);
  } catch (error) {
    showError(error.field ? error : Object.assign(error, { field: "format" }));
  } finally {
    button.disabled = false;
    button.textContent = "Download";
  }
}

const jobs = new JobsPanel({
  list: $("job-list"), summary: $("jobs-summary"), onError: (error) => showError(error, { focus: false }), save,
});

// The form's request as a background job: the same fields as Generate, streamed granularity left out.
async function submitJob() {
  clearErrors();
  const current = mode() === "rvc" ? "both" : mode();
  const seed = $("seed").value.trim();
  const fields = requestFields(current, seed).filter(([name]) => name !== "granularity");
  const button = $("submit-job");
  button.disabled = true;
  try {
    await jobs.submit(formData(fields), $("text").value);
  } catch (error) {
    showError(error);
  } finally {
    button.disabled = false;
  }
}

async function loadServer() {
  try {
    state.features = await detectFeatures();
  } catch (error) {
    state.features = NO_FEATURES;
    if (error instanceof ApiError && error.unauthorized) showError(error, { focus: false });
  }
  const features = state.features;
  if (!state.params) {
    const containers = { rvc: $("rvc-params"), tts: $("tts-params"), output: $("output-params") };
    state.params = new ParameterPanel(containers, { ...features.synthesisFields, ...features.parameterSchemas });
    $("output-set").hidden = !state.params.has("output");
  }
  $("rvc-model-field").dataset.field = features.rvcField;
  $("saved-voice-field").dataset.field = features.savedVoiceField || "saved_voice";
  $("format-field").hidden = !features.formats;
  if (features.formats) {
    $("format").replaceChildren(...features.formats.map((name) => new Option(name, name, name === "wav")));
  }
  applyMode();
  try {
    const config = await getJson("/config");
    savedVoices.defaults = config.defaults;
    state.params.setBaseline(config.defaults);
    const stored = config.reference_audio;
    $("reference-hint").dataset.stored = String(Boolean(stored?.stored));
    if (stored?.stored) {
      $("reference-hint").textContent = `The server has a stored default clip (${stored.duration_s} s): leave this `
        + "empty to use it, or give a clip for this request only.";
    }
  } catch (error) {
    if (error instanceof ApiError && error.unauthorized) showError(error, { focus: false });
  }
  if (features.savedVoiceField) await savedVoices.load();
  await jobs.refresh();
}

function setUp() {
  const preview = new TextPreview({
    textarea: $("text"), count: $("text-count"), list: $("sentence-list"), summaryCount: $("sentence-count"),
  });
  const form = $("synthesis");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    generate();
  });
  $("text").addEventListener("keydown", (event) => {
    if (state.live && event.key === "Enter" && !event.shiftKey && !event.ctrlKey && !event.metaKey) {
      event.preventDefault();
      state.live.flush();
      return;
    }
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  for (const radio of document.querySelectorAll('input[name="mode"]')) radio.addEventListener("change", applyMode);
  $("stop").addEventListener("click", stop);
  $("download").addEventListener("click", download);
  $("submit-job").addEventListener("click", submitJob);
  $("reset-params").addEventListener("click", () => state.params?.resetAll());
  const key = $("api-key");
  key.value = apiKey();
  $("access-form").addEventListener("submit", (event) => {
    event.preventDefault();
    setApiKey(key.value.trim());
    clearErrors();
    loadServer();
    status.poll();
    preview.refresh();
  });
  $("api-key-forget").addEventListener("click", () => {
    key.value = "";
    setApiKey("");
    status.poll();
  });
  const status = new StatusPanel($("status"), { onStatus: (report) => fillModelChoices($("rvc-model"), report) });
  status.start();
  applyMode();
  loadServer().finally(() => {
    document.body.dataset.ready = "true";
  });
}

setUp();
