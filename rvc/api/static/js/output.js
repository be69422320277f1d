// The result panel: progress, per-sentence timings, totals, the joined audio and its waveform.
// Numbers the tests and scripts read are also left as data attributes on #output.

import { drawWaveform } from "./waveform.js";
import { encodeWav } from "./wav.js";

const seconds = (value) => (Number.isFinite(value) ? value.toFixed(2) : "");

// A sentence's table row before its audio arrives: number, text, and timings still to come.
function pendingRow(index, text) {
  const row = document.createElement("tr");
  row.className = "pending";
  for (const value of [String(index + 1), text, "…", "", ""]) {
    const cell = document.createElement("td");
    cell.textContent = value;
    row.append(cell);
  }
  return row;
}

export class ResultView {
  constructor(root) {
    this.root = root;
    const find = (selector) => root.querySelector(selector);
    this.progress = find("#progress");
    this.audio = find("#result-audio");
    this.canvas = find("#waveform");
    this.waveformNote = find("#waveform-note");
    this.rows = find("#timings tbody");
    this.pieceTable = find("#chunk-timings");
    this.pieceRows = find("#chunk-timings tbody");
    this.sums = { audio: find("#sum-audio"), tts: find("#sum-tts"), rvc: find("#sum-rvc") };
    this.total = find("#total");
    this.warnings = find("#warnings");
    this.downloadButton = find("#download");
    this.wav = null;
    this.url = null;
    this.audio.addEventListener("loadedmetadata", () => {
      if (Number.isFinite(this.audio.duration)) root.dataset.audioElementDuration = this.audio.duration.toFixed(3);
    });
    window.addEventListener("resize", () => this.samples && this.draw());
  }

  begin(message) {
    const data = this.root.dataset;
    for (const key of Object.keys(data)) delete data[key];
    data.state = "running";
    data.chunks = "0";
    this.started = performance.now();
    this.timings = [];
    this.pieces = [];
    this.pieceRows.replaceChildren();
    this.pieceTable.hidden = true;
    this.samples = null;
    this.wav = null;
    if (this.url) URL.revokeObjectURL(this.url);
    this.url = null;
    this.audio.removeAttribute("src");
    this.audio.load();
    this.rows.replaceChildren();
    for (const cell of Object.values(this.sums)) cell.textContent = "";
    this.total.textContent = "";
    this.warnings.replaceChildren();
    this.downloadButton.disabled = true;
    this.draw();
    this.say(message);
  }

  say(message) {
    this.progress.textContent = message;
  }

  plan(sentences) {
    this.rows.replaceChildren(...sentences.map((sentence, index) => pendingRow(index, sentence)));
    this.expected = sentences.length;
    this.say(`Speaking sentence 1 of ${sentences.length}…`);
  }

  // chunk: the SSE chunk event's fields (index, text, duration, tts_time, rvc_time, warnings).
  addChunk(chunk, player) {
    const row = this.rows.children[chunk.index];
    if (row) {
      row.className = "";
      const cells = row.children;
      cells[1].textContent = chunk.text;
      cells[2].textContent = seconds(chunk.duration);
      cells[3].textContent = seconds(chunk.tts_time);
      cells[4].textContent = seconds(chunk.rvc_time);
    }
    this.timings.push(chunk);
    const sum = (key) => this.timings.reduce((total, item) => total + (item[key] || 0), 0);
    this.sums.audio.textContent = seconds(sum("duration"));
    this.sums.tts.textContent = seconds(sum("tts_time"));
    this.sums.rvc.textContent = seconds(sum("rvc_time"));
    for (const warning of chunk.warnings || []) {
      const item = document.createElement("li");
      item.textContent = `Sentence ${chunk.index + 1}: ${warning}`;
      this.warnings.append(item);
    }
    this.root.dataset.chunks = String(this.timings.length);
    if (this.timings.length === 1) {
      this.root.dataset.firstAudioS = ((player.firstScheduledAt - this.started) / 1000).toFixed(3);
    }
    const done = this.timings.length;
    if (this.expected && done < this.expected) {
      this.say(`Playing; speaking sentence ${done + 1} of ${this.expected}…`);
    }
    this.samples = player.joined();
    this.draw();
  }

  // Type as you go: the server cut a sentence from what was typed and starts speaking it.
  addSentence(index, text) {
    this.rows.append(pendingRow(index, text));
    this.say(`Speaking sentence ${index + 1}…`);
  }

  // Chunk mode: one piece of a sentence as it left RVC (an SSE chunk event or a WebSocket audio message),
  // {seq, sentence, sample_offset, samples, sample_rate, elapsed_s, timings?: {tts_s, rvc_s}}, plus arrivedS
  // (seconds from the request, as this page saw it). The sentence rows sum their pieces.
  addPiece(piece, player) {
    this.pieces.push(piece);
    this.pieceTable.hidden = false;
    const duration = piece.samples / piece.sample_rate;
    const row = document.createElement("tr");
    for (const value of [String(piece.seq + 1), String(piece.sentence + 1), seconds(piece.sample_offset / piece.sample_rate),
      seconds(duration), seconds(piece.arrivedS), seconds(piece.elapsed_s)]) {
      const cell = document.createElement("td");
      cell.textContent = value;
      row.append(cell);
    }
    this.pieceRows.append(row);
    const sentence = this.rows.children[piece.sentence];
    if (sentence) {
      const own = this.pieces.filter((item) => item.sentence === piece.sentence);
      const sum = (read) => own.reduce((total, item) => total + (read(item) || 0), 0);
      sentence.className = "";
      sentence.children[2].textContent = seconds(sum((item) => item.samples / item.sample_rate));
      sentence.children[3].textContent = seconds(sum((item) => item.timings?.tts_s));
      sentence.children[4].textContent = seconds(sum((item) => item.timings?.rvc_s));
    }
    const total = (read) => this.pieces.reduce((sum, item) => sum + (read(item) || 0), 0);
    this.sums.audio.textContent = seconds(total((item) => item.samples / item.sample_rate));
    this.sums.tts.textContent = seconds(total((item) => item.timings?.tts_s));
    this.sums.rvc.textContent = seconds(total((item) => item.timings?.rvc_s));
    const data = this.root.dataset;
    data.chunks = String(this.pieces.length);
    data.underruns = String(player.underruns);
    if (this.pieces.length === 1) {
      data.firstAudioS = ((player.firstScheduledAt - this.started) / 1000).toFixed(3);
      this.say(`First audio after ${Number(data.firstAudioS).toFixed(2)} s; playing as it arrives…`);
    }
    this.samples = player.joined();
    this.draw();
  }

  draw() {
    const level = drawWaveform(this.canvas, this.samples);
    this.waveformNote.textContent = level ? `Drawn to fill the box; the peak is at ${level}.` : "";
  }

  // end: {total_time, audio_duration} from the server (the SSE end event, or /rvc's headers).
  finish(end, player, seed) {
    const samples = player.joined();
    this.samples = samples;
    this.wav = encodeWav(samples, player.sampleRate);
    this.url = URL.createObjectURL(this.wav);
    this.audio.src = this.url;
    this.draw();
    const data = this.root.dataset;
    Object.assign(data, {
      state: "done", samples: String(samples.length), sampleRate: String(player.sampleRate),
      decodedDuration: (samples.length / player.sampleRate).toFixed(3), totalTime: String(end.total_time),
      audioDuration: String(end.audio_duration), seed: String(seed), scheduled: String(player.sources.length),
      audioContext: player.contextState(),
    });
    const first = data.firstAudioS ? ` First audio after ${Number(data.firstAudioS).toFixed(2)} s.` : "";
    const made = `Total ${seconds(end.total_time)} s for ${seconds(end.audio_duration)} s of audio.`;
    this.total.textContent = made + first;
    this.say(`Done. Seed ${seed}: send it again to repeat this result exactly.`);
    this.downloadButton.disabled = false;
  }

  fail(message) {
    this.root.dataset.state = "error";
    this.say(message);
  }

  stopped() {
    this.root.dataset.state = "stopped";
    this.say("Stopped: the server dropped the rest of the request.");
  }
}
