// Background jobs (POST /jobs): submit the form's request as a job, list the jobs with a progress bar each,
// poll while any is queued or running, fetch the audio (the part done so far while it runs) and cancel.

import { call, getJson } from "./api.js";

const ACTIVE = new Set(["queued", "running"]);
const POLL_MS = 1000;

function seconds(value) {
  if (value === null || value === undefined) return "…";
  return value < 90 ? `${Math.round(value)} s` : `${Math.round(value / 60)} min`;
}

export class JobsPanel {
  constructor({ list, summary, onError, save }) {
    this.list = list;
    this.summary = summary;
    this.onError = onError;
    this.save = save;
    this.timer = null;
    this.texts = new Map(); // job id -> the first words of its text, as submitted from this page
  }

  async submit(form, text) {
    const response = await call("/jobs", { method: "POST", body: form });
    const job = await response.json();
    this.texts.set(job.id, text.trim().slice(0, 80));
    await this.refresh();
    return job;
  }

  async refresh() {
    clearTimeout(this.timer);
    let jobs = [];
    try {
      jobs = (await getJson("/jobs?limit=20")).jobs;
    } catch (error) {
      this.summary.textContent = `Jobs are not available: ${error.message}`;
      return;
    }
    this.render(jobs);
    if (jobs.some((job) => ACTIVE.has(job.state))) this.timer = setTimeout(() => this.refresh(), POLL_MS);
  }

  render(jobs) {
    const running = jobs.filter((job) => ACTIVE.has(job.state)).length;
    this.summary.textContent = jobs.length ? `${jobs.length} job(s), ${running} queued or running.` : "No jobs yet.";
    this.list.replaceChildren(...jobs.map((job) => this.item(job)));
  }

  item(job) {
    const li = document.createElement("li");
    li.className = "job";
    li.dataset.state = job.state;
    li.dataset.id = job.id;
    const head = document.createElement("div");
    head.className = "job-head";
    const name = document.createElement("span");
    name.className = "job-text";
    name.textContent = this.texts.get(job.id) || `Job ${job.id.slice(0, 8)}`;
    const state = document.createElement("span");
    state.className = "job-state";
    state.textContent = job.state;
    head.append(name, state);
    const bar = document.createElement("progress");
    bar.max = 1;
    bar.value = job.progress;
    bar.setAttribute("aria-label", `Progress of job ${job.id.slice(0, 8)}`);
    const facts = document.createElement("p");
    facts.className = "hint job-facts";
    const eta = ACTIVE.has(job.state) ? `, about ${seconds(job.eta_s)} left` : "";
    facts.textContent = `${job.sentences_done} of ${job.sentences_total} sentences, `
      + `${job.audio_seconds.toFixed(1)} s of audio${eta}` + (job.error ? `: ${job.error}` : "");
    const actions = document.createElement("div");
    actions.className = "row";
    if (job.sentences_done > 0) {
      const audio = document.createElement("button");
      audio.type = "button";
      audio.className = "job-audio";
      audio.textContent = job.state === "done" ? "Download" : "Download the part done";
      audio.addEventListener("click", () => this.download(job));
      actions.append(audio);
    }
    if (ACTIVE.has(job.state)) {
      const cancel = document.createElement("button");
      cancel.type = "button";
      cancel.className = "job-cancel";
      cancel.textContent = "Cancel";
      cancel.addEventListener("click", () => this.cancel(job.id));
      actions.append(cancel);
    }
    li.append(head, bar, facts, actions);
    for (const warning of job.warnings.slice(-3)) {
      const note = document.createElement("p");
      note.className = "hint";
      note.textContent = warning;
      li.append(note);
    }
    return li;
  }

  async download(job) {
    try {
      const response = await call(job.audio_url);
      this.save(await response.blob(), `job-${job.id.slice(0, 8)}.${job.format.split("_")[0]}`);
    } catch (error) {
      this.onError(error);
    }
  }

  async cancel(id) {
    try {
      await call(`/jobs/${id}`, { method: "DELETE" });
    } catch (error) {
      this.onError(error);
    }
    await this.refresh();
  }
}
