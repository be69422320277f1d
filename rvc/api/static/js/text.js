// The text box's character count and sentence split preview. The split comes from the server's own
// normaliser and splitter (POST /sentences), debounced, so the preview is exactly what the pipeline will speak.

import { call } from "./api.js";

const DEBOUNCE_MS = 250;

export class TextPreview {
  constructor({ textarea, count, list, summaryCount }) {
    Object.assign(this, { textarea, count, list, summaryCount });
    this.maxChars = null;
    this.timer = null;
    this.generation = 0;
    textarea.addEventListener("input", () => this.changed());
    this.changed();
  }

  characters() {
    return [...this.textarea.value.trim()].length; // code points, as Python's len() counts them
  }

  changed() {
    this.renderCount();
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.refresh(), DEBOUNCE_MS);
  }

  renderCount() {
    const characters = this.characters();
    const limit = this.maxChars ? ` of ${this.maxChars}` : "";
    const over = this.maxChars !== null && characters > this.maxChars;
    this.count.textContent = `${characters}${limit} characters${over ? ": over the limit, shorten the text" : ""}`;
    this.count.classList.toggle("over", over);
  }

  async refresh() {
    const generation = ++this.generation;
    let preview;
    try {
      preview = await (await call("/sentences", { method: "POST", json: { text: this.textarea.value } })).json();
    } catch {
      this.summaryCount.textContent = "(preview unavailable)";
      return;
    }
    if (generation !== this.generation) return; // a newer keystroke's answer is on its way
    this.maxChars = preview.max_text_chars;
    this.renderCount();
    this.summaryCount.textContent = `(${preview.sentences.length})`;
    this.list.replaceChildren(...preview.sentences.map((sentence) => {
      const item = document.createElement("li");
      item.textContent = sentence;
      return item;
    }));
  }
}
