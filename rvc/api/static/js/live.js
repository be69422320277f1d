// "Type as you go": one WebSocket session on /ws/synthesize (JSON text frames, docs/README). The page sends
// `start` with the request's fields, then `append` deltas of the text box as the user types (debounced),
// `flush` on Enter and `close` on Stop; it plays each `audio` message at its sample offset as it arrives.
// A server without the route closes the handshake with no reason a page can read, so the page asks the
// same path over HTTP and shows what the server says there.

import { errorFrom } from "./api.js";
import { base64ToBuffer, pcm16ToFloat } from "./wav.js";

const DEBOUNCE_MS = 300;

// The socket on this page's own origin (wss under https).
export function socketUrl(path) {
  const url = new URL(path, location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.href;
}

export class LiveSession {
  // start: the `start` message's fields; textarea: the text box whose additions are sent;
  // on: {ready(message), sentence(message), audio(message, samples), done(message), error(error), closed(info)}
  constructor({ path = "/ws/synthesize", start, textarea, on }) {
    Object.assign(this, { path, start, textarea, on });
    this.sent = "";
    this.timer = null;
    this.ready = false;
    this.closing = false;
    this.finished = false;
    this.started = performance.now();
    this.onInput = () => {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.sendDelta(), DEBOUNCE_MS);
    };
  }

  open() {
    const socket = (this.socket = new WebSocket(socketUrl(this.path)));
    socket.addEventListener("open", () => {
      this.send({ type: "start", ...this.start });
      this.sendDelta();
      this.textarea.addEventListener("input", this.onInput);
    });
    socket.addEventListener("message", (event) => this.receive(event.data));
    socket.addEventListener("close", (event) => this.closed(event));
  }

  send(message) {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  // What was added at the end of the text box since the last append; an edit before it cannot be unsaid.
  sendDelta() {
    clearTimeout(this.timer);
    const text = this.textarea.value;
    if (text.startsWith(this.sent)) {
      const delta = text.slice(this.sent.length);
      if (delta) this.send({ type: "append", text: delta });
    }
    this.sent = text;
  }

  flush() {
    this.sendDelta();
    this.send({ type: "flush" });
  }

  // Stop: speak what is left and finish (the server sends `done` and closes with 1000); a second Stop hangs up.
  stop() {
    if (this.closing) {
      this.socket?.close(1000, "stopped");
      return;
    }
    this.closing = true;
    this.flush();
    this.send({ type: "close" });
  }

  receive(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      this.on.error({ message: `the server sent a frame that is not JSON: ${String(text).slice(0, 80)}` });
      return;
    }
    const elapsed = (performance.now() - this.started) / 1000;
    if (message.type === "ready") {
      this.ready = true;
      this.on.ready(message);
    } else if (message.type === "sentence") {
      this.on.sentence(message);
    } else if (message.type === "audio") {
      const bytes = base64ToBuffer(message.audio);
      this.on.audio({ ...message, arrivedS: elapsed }, message.format === "pcm" ? pcm16ToFloat(bytes) : bytes);
    } else if (message.type === "done") {
      this.finished = true;
      this.on.done(message);
    } else if (message.type === "error") {
      this.on.error({ code: message.code, field: message.field, message: message.message, status: 400 });
    }
  }

  async closed(event) {
    this.textarea.removeEventListener("input", this.onInput);
    clearTimeout(this.timer);
    let problem = null;
    if (!this.ready) problem = await this.whyRefused();
    else if (!this.finished && event.code !== 1000) {
      problem = `The session closed (code ${event.code}${event.reason ? `: ${event.reason}` : ""}).`;
    }
    this.on.closed({ code: event.code, problem, finished: this.finished });
  }

  async whyRefused() {
    let detail = "it did not answer";
    try {
      const response = await fetch(this.path);
      detail = (await errorFrom(response)).message;
    } catch {
      // unreachable: keep the plain words
    }
    return `The server did not open ${this.path} (${detail}): type as you go needs a server with the WebSocket route.`;
  }
}
