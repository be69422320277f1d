// WAV in and out, in the page: the API's chunks are parsed here at their own sample rate (decodeAudioData
// would resample them to the sound card's rate), and the result and microphone recordings are written here.

function text(view, offset, length) {
  let out = "";
  for (let i = 0; i < length; i += 1) out += String.fromCharCode(view.getUint8(offset + i));
  return out;
}

// bytes: ArrayBuffer of a RIFF/WAVE file (PCM 8/16/24/32 or IEEE float 32/64).
// Returns {samples: Float32Array mono in [-1, 1], sampleRate} or null when it is no WAV this reads.
export function parseWav(bytes) {
  const view = new DataView(bytes);
  if (bytes.byteLength < 12 || text(view, 0, 4) !== "RIFF" || text(view, 8, 4) !== "WAVE") return null;
  let format = null;
  let offset = 12;
  while (offset + 8 <= bytes.byteLength) {
    const id = text(view, offset, 4);
    const size = view.getUint32(offset + 4, true);
    const start = offset + 8;
    if (id === "fmt ") {
      let code = view.getUint16(start, true);
      if (code === 0xfffe && size >= 26) code = view.getUint16(start + 24, true); // WAVE_FORMAT_EXTENSIBLE
      format = {
        code, channels: view.getUint16(start + 2, true), sampleRate: view.getUint32(start + 4, true),
        bits: view.getUint16(start + 14, true),
      };
    } else if (id === "data" && format) {
      // a streamed WAV may declare 0 or 0xFFFFFFFF: read to the end of what arrived
      const end = size === 0 || start + size > bytes.byteLength ? bytes.byteLength : start + size;
      return decodeFrames(view, start, end, format);
    }
    offset = start + size + (size % 2);
  }
  return null;
}

function decodeFrames(view, start, end, { code, channels, sampleRate, bits }) {
  const width = bits / 8;
  const frames = Math.floor((end - start) / (width * channels));
  const samples = new Float32Array(frames);
  const read = sampleReader(view, code, bits);
  if (!read) return null;
  for (let frame = 0; frame < frames; frame += 1) {
    let sum = 0;
    for (let channel = 0; channel < channels; channel += 1) {
      sum += read(start + (frame * channels + channel) * width);
    }
    samples[frame] = sum / channels;
  }
  return { samples, sampleRate };
}

function sampleReader(view, code, bits) {
  if (code === 3 && bits === 32) return (at) => view.getFloat32(at, true);
  if (code === 3 && bits === 64) return (at) => view.getFloat64(at, true);
  if (code !== 1) return null;
  if (bits === 8) return (at) => (view.getUint8(at) - 128) / 128;
  if (bits === 16) return (at) => view.getInt16(at, true) / 32768;
  if (bits === 24) {
    return (at) => ((view.getInt8(at + 2) << 16) | (view.getUint8(at + 1) << 8) | view.getUint8(at)) / 8388608;
  }
  if (bits === 32) return (at) => view.getInt32(at, true) / 2147483648;
  return null;
}

// samples: Float32Array mono -> a 16-bit PCM WAV Blob.
export function encodeWav(samples, sampleRate) {
  const buffer = new ArrayBuffer(44 + samples.length * 2);
  const view = new DataView(buffer);
  const put = (offset, value) => {
    for (let i = 0; i < value.length; i += 1) view.setUint8(offset + i, value.charCodeAt(i));
  };
  put(0, "RIFF");
  view.setUint32(4, 36 + samples.length * 2, true);
  put(8, "WAVE");
  put(12, "fmt ");
  view.setUint32(16, 16, true);
  view.setUint16(20, 1, true);
  view.setUint16(22, 1, true);
  view.setUint32(24, sampleRate, true);
  view.setUint32(28, sampleRate * 2, true);
  view.setUint16(32, 2, true);
  view.setUint16(34, 16, true);
  put(36, "data");
  view.setUint32(40, samples.length * 2, true);
  for (let i = 0; i < samples.length; i += 1) {
    const value = Math.max(-1, Math.min(1, samples[i]));
    view.setInt16(44 + i * 2, Math.round(value < 0 ? value * 32768 : value * 32767), true);
  }
  return new Blob([buffer], { type: "audio/wav" });
}

export function base64ToBuffer(base64) {
  const binary = atob(base64);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  return bytes.buffer;
}

// bytes: ArrayBuffer of raw s16le mono (the API's `pcm` format) -> Float32Array in [-1, 1].
export function pcm16ToFloat(bytes) {
  const view = new DataView(bytes);
  const samples = new Float32Array(Math.floor(bytes.byteLength / 2));
  for (let i = 0; i < samples.length; i += 1) samples[i] = view.getInt16(i * 2, true) / 32768;
  return samples;
}
