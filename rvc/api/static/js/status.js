// The live service panel: /health and /status every few seconds. It turns red (data-health="down") when
// Spark-TTS on Triton or every RVC worker is down, or the gateway does not answer.

import { ApiError, authHeaders, getJson } from "./api.js";

const POLL_MS = 2000;
const HIDDEN_POLL_MS = 10000; // a background tab checks less often

const DEMO_WORDS = "This server runs the demo models, which have random weights: what you hear is noise, "
  + "not speech. Install the real Spark-TTS and RVC checkpoints (python tools/download_all_assets.py) to hear a voice.";

function duration(seconds) {
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
}

async function readHealth() {
  // /health answers 503 with the same body when nothing is ready: read it either way
  const response = await fetch("/health", { headers: authHeaders(), cache: "no-store" });
  return response.json();
}

function summaryOf(health) {
  if (!health.tts_ready && !health.rvc_ready) return "Down: neither Spark-TTS nor RVC is ready.";
  if (!health.tts_ready) {
    return "Spark-TTS on Triton is down: text to speech fails until it is back; RVC only still works.";
  }
  if (!health.rvc_ready) return "No RVC worker is alive: only TTS-only requests work until the pool recovers.";
  return "Ready: text to speech and voice conversion both work.";
}

export class StatusPanel {
  constructor(root, { onStatus } = {}) {
    this.root = root;
    this.onStatus = onStatus || (() => {});
    this.field = (id) => root.querySelector(`#${id}`);
    this.timer = null;
    this.generation = 0;
  }

  start() {
    this.poll();
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) this.poll();
    });
  }

  async poll() {
    clearTimeout(this.timer);
    const generation = ++this.generation;
    let health = null;
    let status = null;
    let statusError = null;
    try {
      health = await readHealth();
    } catch {
      health = null;
    }
    if (health) {
      try {
        status = await getJson("/status", { headers: { "Cache-Control": "no-store" } });
      } catch (error) {
        statusError = error instanceof ApiError ? error : null;
      }
    }
    if (generation !== this.generation) return; // a newer poll (a new key, a visible tab) took over
    this.render(health, status, statusError);
    if (status) this.onStatus(status);
    this.timer = setTimeout(() => this.poll(), document.hidden ? HIDDEN_POLL_MS : POLL_MS);
  }

  set(id, text, state) {
    const node = this.field(id);
    node.textContent = text;
    node.classList.toggle("down", state === "down");
    node.classList.toggle("up", state === "up");
  }

  render(health, status, statusError) {
    const root = this.root;
    if (!health || typeof health.tts_ready !== "boolean") {
      root.dataset.health = "down";
      root.dataset.triton = "unknown";
      this.field("status-summary").textContent = health?.error?.message
        || "The service does not answer: the gateway is down or unreachable.";
      return;
    }
    root.dataset.health = health.status === "ready" ? "ready" : health.status === "degraded" ? "degraded" : "down";
    root.dataset.triton = health.tts_ready ? "ready" : "down";
    this.field("status-summary").textContent = summaryOf(health);
    const address = status?.triton?.address ? ` (${status.triton.address})` : "";
    this.set("st-triton", `${health.tts_ready ? "ready" : "down"}${address}`, health.tts_ready ? "up" : "down");
    this.renderPool(status, statusError, health);
    const demo = this.field("st-demo");
    demo.hidden = !health.demo_assets;
    demo.textContent = DEMO_WORDS;
    const problems = (health.problems || []).filter((problem) => !problem.startsWith("demo assets"));
    this.field("st-problems").replaceChildren(...problems.map((problem) => {
      const item = document.createElement("li");
      item.textContent = problem;
      return item;
    }));
  }

  renderPool(status, statusError, health) {
    if (!status) {
      const why = statusError?.unauthorized ? "needs the API key" : "unavailable";
      for (const id of ["st-queue", "st-requests", "st-uptime", "st-profile"]) this.set(id, why);
      const alive = health.rvc_ready ? "alive" : "none alive";
      this.set("st-workers", `${alive} (/status ${why})`, health.rvc_ready ? "up" : "down");
      return;
    }
    const pool = status.rvc || {};
    const workers = pool.workers || [];
    const alive = workers.filter((w) => ["idle", "busy"].includes(w.state)).length;
    const busy = workers.filter((w) => w.state === "busy").length;
    const total = pool.num_workers ?? workers.length;
    const text = pool.error ? pool.error : `${alive} of ${total} alive, ${busy} busy`;
    this.set("st-workers", text, alive > 0 ? "up" : "down");
    this.field("st-workers").dataset.alive = String(alive);
    this.field("st-workers").dataset.busy = String(busy);
    this.set("st-queue", `${pool.queue_depth ?? 0} waiting, ${pool.running ?? 0} running`);
    const counts = status.requests || {};
    this.set("st-requests", `${counts.requests ?? 0} (${counts.succeeded ?? 0} ok, ${counts.failed ?? 0} failed, `
      + `${counts.cancelled ?? 0} cancelled)`);
    this.set("st-uptime", duration(status.uptime_s || 0));
    const profile = status.rvc_profile || {};
    this.set("st-profile", profile.converts ? `${profile.converts} (${profile.source})` : "unknown");
  }
}
