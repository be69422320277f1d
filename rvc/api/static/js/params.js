// The conversion and sampling parameters: a slider and a number box each, with the API's range and default.
// Only parameters the user changed are sent, so the server's stored defaults (or a saved voice's settings)
// apply to the rest, as they would for any client that leaves a field out.

// Labels and steps are the page's own; ranges, descriptions and choices come from the API's schema of the
// stored defaults when the server publishes it, and these fallbacks mirror rvc/processing/contract.py.
const PARAMETERS = [
  { name: "pitch_shift", label: "Pitch shift", group: "rvc", step: 1, min: -24, max: 24, value: 0,
    text: "semitones applied by RVC" },
  { name: "f0_method", label: "Pitch extractor", group: "rvc", choices: ["rmvpe", "fcpe", "pm", "harvest", "crepe"],
    value: "rmvpe", text: "pitch extractor used by RVC" },
  { name: "index_rate", label: "Index rate", group: "rvc", step: 0.05, min: 0, max: 1, value: 0.75,
    text: "how much of the voice's faiss index to blend in" },
  { name: "filter_radius", label: "Filter radius", group: "rvc", step: 1, min: 0, max: 7, value: 3,
    text: "median filter radius for harvest f0" },
  { name: "rms_mix_rate", label: "Loudness mix", group: "rvc", step: 0.05, min: 0, max: 1, value: 0.25,
    text: "1 keeps the output's own loudness envelope" },
  { name: "protect", label: "Protect", group: "rvc", step: 0.01, min: 0, max: 0.5, value: 0.33,
    text: "protects voiceless consonants; 0.5 disables" },
  { name: "rvc_profile", label: "RVC profile", group: "rvc", optional: true, value: "",
    choices: ["", "2026", "2024"], labels: { "": "the service's (see status)" },
    text: "which official RVC release the conversion follows: 2026 fills unvoiced pitch, 2024 is 20240604" },
  { name: "temperature", label: "Temperature", group: "tts", step: 0.05, min: 0, max: 2, value: 0.8,
    exclusiveMin: true, text: "Spark-TTS sampling temperature" },
  { name: "top_k", label: "Top-k", group: "tts", step: 1, min: 1, max: 10000, value: 50,
    text: "Spark-TTS top-k sampling" },
  { name: "top_p", label: "Top-p", group: "tts", step: 0.01, min: 0, max: 1, value: 0.95, exclusiveMin: true,
    text: "Spark-TTS nucleus sampling" },
  // a designed voice (Spark-TTS's controllable mode) instead of the clip: shown where the form has the field
  { name: "gender", label: "Designed voice", group: "tts", optional: true, value: "", choices: ["", "female", "male"],
    labels: { "": "off (clone the clip)" }, text: "design a voice from attributes instead of cloning the clip" },
  { name: "pitch", label: "Designed pitch", group: "tts", optional: true, value: "",
    choices: ["", "very_low", "low", "moderate", "high", "very_high"], labels: { "": "moderate" },
    text: "the designed voice's pitch (needs a gender)" },
  { name: "speed_level", label: "Designed speed", group: "tts", optional: true, value: "",
    choices: ["", "very_low", "low", "moderate", "high", "very_high"], labels: { "": "moderate" },
    text: "the designed voice's speaking rate (needs a gender)" },
  // output shaping: shown only where the synthesis form has the field
  { name: "speed", label: "Speed", group: "output", step: 0.05, min: 0.25, max: 4, value: 1, optional: true,
    text: "tempo with the pitch kept" },
  { name: "sample_rate", label: "Sample rate", group: "output", optional: true, value: "",
    choices: ["", "8000", "16000", "22050", "24000", "32000", "40000", "44100", "48000"],
    labels: { "": "the voice's own" }, text: "output rate in Hz" },
];

const shown = (spec, value) => spec.labels?.[value] ?? String(value);

function withSchema(parameter, schema) {
  if (!schema) return parameter;
  const merged = { ...parameter, text: schema.description || parameter.text };
  // a parameter that may stay unset (its "" choice, or a "" default: the server decides) keeps that choice
  if (Array.isArray(schema.enum)) merged.choices = [...(parameter.choices?.includes("") || parameter.value === "" ? [""] : []), ...schema.enum.map(String)];
  if (schema.minimum !== undefined) Object.assign(merged, { min: schema.minimum, exclusiveMin: false });
  if (schema.exclusiveMinimum !== undefined) {
    Object.assign(merged, { min: schema.exclusiveMinimum, exclusiveMin: true });
  }
  if (schema.maximum !== undefined) merged.max = schema.maximum;
  if (schema.default !== undefined && schema.default !== null) merged.value = schema.default;
  return merged;
}

function rangeText(parameter) {
  if (parameter.choices) return parameter.choices.map((choice) => shown(parameter, choice)).join(", ");
  const low = parameter.exclusiveMin ? `above ${parameter.min}` : `${parameter.min}`;
  return `${low} to ${parameter.max}`;
}

function element(tag, attributes = {}, children = []) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "text") node.textContent = value;
    else node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}

class Parameter {
  constructor(spec) {
    this.spec = spec;
    this.changed = false;
    this.baseline = spec.value;
    const id = `p-${spec.name}`;
    const label = element("label", { for: id, text: spec.label });
    const described = `h-${spec.name} err-${spec.name}`;
    if (spec.choices) {
      this.input = element("select", { id, "aria-describedby": described },
        spec.choices.map((choice) => element("option", { value: choice, text: shown(spec, choice) })));
      this.slider = null;
    } else {
      const low = spec.exclusiveMin ? spec.min + spec.step : spec.min;
      this.slider = element("input", {
        type: "range", id: `r-${spec.name}`, min: low, max: spec.max, step: spec.step,
        "aria-label": `${spec.label} (slider)`,
      });
      this.input = element("input", {
        type: "number", id, min: low, max: spec.max, step: spec.step, inputmode: "decimal",
        "aria-describedby": described,
      });
    }
    this.reset = element("button", {
      type: "button", class: "reset", "aria-label": `Reset ${spec.label} to its default`, text: "Reset", hidden: "",
    });
    this.hint = element("p", { class: "hint", id: `h-${spec.name}` });
    const row = element("div", { class: "param-row" }, [this.slider, this.input, this.reset].filter(Boolean));
    const error = element("p", { class: "error", id: `err-${spec.name}`, role: "alert", hidden: "" });
    this.block = element("div", { class: "field param", "data-field": spec.name }, [label, row, this.hint, error]);
    this.input.addEventListener("input", () => this.edited(this.input.value));
    this.input.addEventListener("change", () => this.edited(this.input.value));
    this.slider?.addEventListener("input", () => this.edited(this.slider.value, true));
    this.reset.addEventListener("click", () => this.restore());
    this.show(spec.value);
  }

  edited(value, fromSlider = false) {
    if (fromSlider) this.input.value = value;
    else if (this.slider && value !== "") this.slider.value = value;
    this.changed = true;
    this.block.classList.add("changed");
    this.reset.hidden = false;
  }

  show(value) {
    this.input.value = value;
    if (this.slider) this.slider.value = value;
    const fallback = shown(this.spec, this.baseline);
    this.hint.textContent = `${this.spec.text}. Range ${rangeText(this.spec)}; default ${fallback}.`;
  }

  setBaseline(value) {
    if (value === undefined || value === null) return;
    this.baseline = value;
    if (!this.changed) this.show(value);
    else this.show(this.input.value);
  }

  restore() {
    this.changed = false;
    this.block.classList.remove("changed");
    this.reset.hidden = true;
    this.show(this.baseline);
  }
}

export class ParameterPanel {
  // containers: {rvc, tts, output: Element}; schemas: property schemas by name (the stored defaults', then
  // the synthesis form's); an optional parameter without a schema is a field this server does not have.
  constructor(containers, schemas = {}) {
    this.parameters = PARAMETERS.filter((spec) => !spec.optional || schemas[spec.name])
      .map((spec) => new Parameter(withSchema(spec, schemas[spec.name])));
    for (const parameter of this.parameters) containers[parameter.spec.group].append(parameter.block);
  }

  has(group) {
    return this.parameters.some((parameter) => parameter.spec.group === group);
  }

  // The values shown for untouched parameters: the stored defaults, or a saved voice's settings.
  setBaseline(values = {}) {
    for (const parameter of this.parameters) parameter.setBaseline(values[parameter.spec.name]);
  }

  resetAll() {
    for (const parameter of this.parameters) parameter.restore();
  }

  // A designed voice is chosen: the clip and its transcript are then left out (the API takes one or the other).
  designing() {
    return this.parameters.some((p) => p.spec.name === "gender" && p.changed && p.input.value !== "");
  }

  // [name, value] pairs of the changed parameters in `groups`, as the form sends them.
  changedFields(groups) {
    return this.parameters
      .filter((p) => p.changed && groups.includes(p.spec.group) && p.input.value !== "")
      .map((p) => [p.spec.name, p.input.value]);
  }
}
