// The two voice pickers: saved voices (GET /voices, where the server has them) and the RVC models the
// worker pool has loaded (from /status).

import { getJson } from "./api.js";

// GET /voices may answer a list or {voices: [...]}, of names or of objects with a name.
function voiceItems(body) {
  const items = Array.isArray(body) ? body : body?.voices || body?.data || [];
  return items
    .map((item) => (typeof item === "string" ? { name: item } : item))
    .filter((item) => item && (item.name || item.id));
}

// A saved voice's own settings, wherever the server nests them; unset (null) ones are left out.
function voiceSettings(voice) {
  const nested = ["settings", "params", "parameters", "defaults", "conversion"]
    .map((key) => voice[key])
    .filter((value) => value && typeof value === "object");
  const merged = Object.assign({}, voice, ...nested);
  return Object.fromEntries(Object.entries(merged).filter(([, value]) => value !== null && value !== undefined));
}

function describe(voice, settings) {
  const parts = [voice.description, settings.rvc_model ? `RVC model ${settings.rvc_model}` : ""];
  if (settings.skip_rvc === true) parts.push("no RVC");
  return parts.filter(Boolean).join("; ");
}

export class SavedVoices {
  constructor(block, select, onBaseline) {
    Object.assign(this, { block, select, onBaseline });
    this.voices = [];
    this.defaults = {};
    select.addEventListener("change", () => this.changed());
  }

  selected() {
    return this.select.value;
  }

  async load() {
    let body;
    try {
      body = await getJson("/voices");
    } catch {
      return; // the picker keeps its "none" entry; synthesis with a clip still works
    }
    this.voices = voiceItems(body);
    const current = this.select.value;
    const options = this.voices.map((voice) => new Option(voice.name || voice.id, voice.name || voice.id));
    this.select.replaceChildren(new Option("None: use the clip above", ""), ...options);
    this.select.value = this.voices.some((voice) => (voice.name || voice.id) === current) ? current : "";
    this.block.dataset.count = String(this.voices.length);
  }

  changed() {
    const voice = this.voices.find((item) => (item.name || item.id) === this.select.value);
    const settings = voice ? voiceSettings(voice) : {};
    this.onBaseline({ ...this.defaults, ...settings });
    document.getElementById("reference_text").placeholder = settings.reference_text || "";
    const hint = this.block.querySelector(".hint");
    hint.dataset.general ??= hint.textContent;
    hint.textContent = voice ? describe(voice, settings) || hint.dataset.general : hint.dataset.general;
  }
}

// Keeps the RVC model choices in step with the pool's loaded voices, without disturbing a choice made.
export function fillModelChoices(select, status) {
  const voices = status?.rvc?.voices;
  if (!Array.isArray(voices)) return;
  const fallback = status.models?.rvc_default_voice?.replace(/\.pth$/, "");
  const wanted = [fallback, ...voices].join("\n");
  if (select.dataset.choices === wanted) return;
  const current = select.value;
  const defaultLabel = fallback ? `Server default (${fallback})` : "Server default";
  select.replaceChildren(new Option(defaultLabel, ""), ...voices.map((name) => new Option(name, name)));
  select.value = voices.includes(current) ? current : "";
  select.dataset.choices = wanted;
}
