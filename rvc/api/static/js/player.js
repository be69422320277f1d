// Gapless playback of sentence chunks as they arrive: each decoded chunk is scheduled on the Web Audio
// clock right after the previous one, so the first sentence plays while the server makes the rest.

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
    this.firstScheduledAt = null; // performance.now() when the first chunk was scheduled
  }

  get length() {
    return this.chunks.reduce((total, chunk) => total + chunk.length, 0);
  }

  // bytes: ArrayBuffer of one audio file (WAV from the API; other containers go through the browser).
  async add(bytes) {
    const decoded = parseWav(bytes) || (await this.decodeWithBrowser(bytes));
    if (this.sampleRate !== null && decoded.sampleRate !== this.sampleRate) {
      throw new Error(`a chunk came at ${decoded.sampleRate} Hz after chunks at ${this.sampleRate} Hz`);
    }
    this.sampleRate = decoded.sampleRate;
    this.chunks.push(decoded.samples);
    this.schedule(decoded.samples, decoded.sampleRate);
    return decoded;
  }

  async decodeWithBrowser(bytes) {
    const buffer = await audioContext().decodeAudioData(bytes.slice(0));
    return { samples: buffer.getChannelData(0).slice(), sampleRate: buffer.sampleRate };
  }

  schedule(samples, sampleRate) {
    if (!samples.length) return;
    const ctx = audioContext();
    const buffer = ctx.createBuffer(1, samples.length, sampleRate);
    buffer.copyToChannel(samples, 0);
    const source = ctx.createBufferSource();
    source.buffer = buffer;
    source.connect(ctx.destination);
    this.nextTime = Math.max(this.nextTime, ctx.currentTime + START_MARGIN_S);
    source.start(this.nextTime);
    this.nextTime += buffer.duration;
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

  // All chunks as one Float32Array (plain concatenation: what was heard, sample for sample).
  joined() {
    const out = new Float32Array(this.length);
    let offset = 0;
    for (const chunk of this.chunks) {
      out.set(chunk, offset);
      offset += chunk.length;
    }
    return out;
  }
}
