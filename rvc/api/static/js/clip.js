// The clip the request uploads: a chosen file or a microphone recording. A recording is decoded by the
// browser (MediaRecorder gives WebM/Ogg Opus) and re-encoded as WAV, which every server decoder reads.

import { audioContext } from "./player.js";
import { encodeWav } from "./wav.js";

const MAX_RECORD_S = 30; // the service's default MAX_REFERENCE_SECONDS

export class ClipPicker {
  constructor({ fileInput, recordButton, recordState, box, audio, info, clearButton, onError }) {
    Object.assign(this, { fileInput, recordButton, recordState, box, audio, info, clearButton, onError });
    this.file = null;
    this.url = null;
    this.recorder = null;
    fileInput.addEventListener("change", () => {
      if (fileInput.files.length) this.use(fileInput.files[0]);
    });
    recordButton.addEventListener("click", () => (this.recorder ? this.stopRecording() : this.startRecording()));
    clearButton.addEventListener("click", () => this.clear());
    audio.addEventListener("loadedmetadata", () => {
      if (this.file && Number.isFinite(audio.duration)) {
        box.dataset.duration = audio.duration.toFixed(3);
        info.textContent = `${this.file.name}, ${audio.duration.toFixed(1)} s`;
      }
    });
  }

  use(file) {
    this.file = file;
    if (this.url) URL.revokeObjectURL(this.url);
    this.url = URL.createObjectURL(file);
    this.audio.src = this.url;
    this.info.textContent = file.name;
    this.box.hidden = false;
    this.box.dataset.name = file.name;
  }

  clear() {
    this.file = null;
    this.fileInput.value = "";
    if (this.url) URL.revokeObjectURL(this.url);
    this.url = null;
    this.audio.removeAttribute("src");
    this.box.hidden = true;
    delete this.box.dataset.name;
    delete this.box.dataset.duration;
  }

  async startRecording() {
    if (!navigator.mediaDevices?.getUserMedia || typeof MediaRecorder === "undefined") {
      this.onError("This browser cannot record here (recording needs https or localhost).");
      return;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (error) {
      this.onError(`The microphone is not available: ${error.message || error.name}`);
      return;
    }
    const recorder = new MediaRecorder(stream);
    const pieces = [];
    recorder.addEventListener("dataavailable", (event) => pieces.push(event.data));
    recorder.addEventListener("stop", async () => {
      for (const track of stream.getTracks()) track.stop();
      await this.finishRecording(new Blob(pieces, { type: recorder.mimeType }));
    });
    this.recorder = recorder;
    this.started = performance.now();
    recorder.start();
    this.recordButton.setAttribute("aria-pressed", "true");
    this.recordButton.textContent = "Stop recording";
    this.ticker = setInterval(() => this.tick(), 250);
  }

  tick() {
    const seconds = (performance.now() - this.started) / 1000;
    this.recordState.textContent = `Recording… ${seconds.toFixed(1)} s`;
    if (seconds >= MAX_RECORD_S) this.stopRecording();
  }

  stopRecording() {
    clearInterval(this.ticker);
    if (this.recorder && this.recorder.state !== "inactive") this.recorder.stop();
    this.recorder = null;
    this.recordButton.setAttribute("aria-pressed", "false");
    this.recordButton.textContent = "Record from microphone";
    this.recordState.textContent = "Preparing the recording…";
  }

  async finishRecording(blob) {
    try {
      const decoded = await audioContext().decodeAudioData(await blob.arrayBuffer());
      const wav = encodeWav(decoded.getChannelData(0), decoded.sampleRate);
      this.fileInput.value = ""; // the recording replaces any chosen file
      this.use(new File([wav], "recording.wav", { type: "audio/wav" }));
      this.recordState.textContent = `Recorded ${decoded.duration.toFixed(1)} s.`;
    } catch (error) {
      this.recordState.textContent = "";
      this.onError(`The recording could not be read: ${error.message || error.name}`);
    }
  }
}
