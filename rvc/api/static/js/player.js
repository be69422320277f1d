// Gapless playback of audio as it arrives, on the Web Audio clock. Sentence mode: each decoded sentence is
// scheduled right after the previous one. Chunk mode (SSE chunk events, WebSocket audio messages): each piece
// is scheduled at its sample offset in the whole output, start + offset / rate, so pieces of any size join
// sample-exactly; a piece that arrives after its time shifts the rest (the listener hears that gap, counted
// in `underruns` / `stalledS`).

import { parseWav } from "./wav.js";

const START_MARGIN_S = 0.05; // scheduling slack so a chunk never starts in the past

let context = null;

// One AudioContext for the page, created (or resumed) from a click: browsers only let sound start
// after a user gesture.
export function audioContext() {
  if (!context) context = new AudioContext();
  if (context.state === "suspended") context.resume();
  return context;
}

export class StreamPlayer {
  constructor() {
    this.chunks = []; // Float32Array mono pieces, in order
    this.sampleRate = null;
    this.sources = [];
    this.nextTime = 0;
    this.offsets = []; // each piece's first sample in the whole output
    this.origin = null; // chunk mode: the audio clock time of sample 0
    this.underruns = 0;
    this.stalledS = 0;
    this.firstScheduledAt = null; // performance.now() when the first chunk was scheduled
  }

  get length() {
    return this.chunks.reduce((end, chunk, index) => Math.max(end, this.offsets[index] + chunk.length), 0);
  }

  // bytes: ArrayBuffer of one audio file (WAV from the API; other containers go through the browser).
  async add(bytes) {
    const decoded = parseWav(bytes) || (await this.decodeWithBrowser(bytes));
    if (this.sampleRate !== null && decoded.sampleRate !== this.sampleRate) {
      throw new Error(`a chunk came at ${decoded.sampleRate} Hz after chunks at ${this.sampleRate} Hz`);
    }
    this.sampleRate = decoded.sampleRate;
    this.offsets.push(this.length);
    this.chunks.push(decoded.samples);
    this.schedule(decoded.samples, decoded.sampleRate);
    return decoded;
  }

  // Chunk mode, a piece as a file (WAV, or a container the browser decodes) starting at sample `offset`.
  async addAt(bytes, offset) {
    const decoded = parseWav(bytes) || (await this.decodeWithBrowser(bytes));
    this.addSamples(decoded.samples, decoded.sampleRate, offset);
    return decoded;
  }

  // Chunk mode, decoded samples (Float32Array mono) starting at sample `offset` of the whole output.
  addSamples(samples, sampleRate, offset) {
    if (this.sampleRate !== null && sampleRate !== this.sampleRate) {
      throw new Error(`a chunk came at ${sampleRate} Hz after chunks at ${this.sampleRate} Hz`);
    }
    this.sampleRate = sampleRate;
    this.offsets.push(offset);
    this.chunks.push(samples);
    if (!samples.length) return;
    const ctx = audioContext();
    if (this.origin === null) this.origin = ctx.currentTime + START_MARGIN_S - offset / sampleRate;
    let when = this.origin + offset / sampleRate;
    const late = ctx.currentTime + START_MARGIN_S / 5 - when;
    if (late > 0) { // the player ran dry: everything after this piece starts that much later
      this.origin += late;
      when += late;
      this.underruns += 1;
      this.stalledS += late;
    }
    this.play(samples, sampleRate, when);
  }

  async decodeWithBrowser(bytes) {
    const buffer = await audioContext().decodeAudioData(bytes.slice(0));
    return { samples: buffer.getChannelData(0).slice(), sampleRate: buffer.sampleRate };
  }

  schedule(samples, sampleRate) {
    if (!samples.length) return;
    const ctx = audioContext();
    this.nextTime = Math.max(this.nextTime, ctx.currentTime + START_MARGIN_S);
    this.play(samples, sampleRate, this.nextTime);
    this.nextTime += samples.length / sampleRate;
  }

  play(samples, sampleRate, when) {
    const ctx = audioContext();
    const buffer = ctx.createBuffer(1, samples.length, sampleRate);
    buffer.copyToChannel(samples, 0);
    const source = ctx.createBufferSource();
    source.buffer = buffer;
    source.connect(ctx.destination);
    source.start(when);
    this.sources.push(source);
    if (this.firstScheduledAt === null) this.firstScheduledAt = performance.now();
  }

  contextState() {
    return context ? context.state : "none";
  }

  stop() {
    for (const source of this.sources) {
      try {
        source.stop();
      } catch {
        // already ended
      }
    }
    this.sources = [];
  }

  // All chunks as one Float32Array, each at its offset: what was heard, sample for sample.
  joined() {
    const out = new Float32Array(this.length);
    this.chunks.forEach((chunk, index) => out.set(chunk, this.offsets[index]));
    return out;
  }
}
