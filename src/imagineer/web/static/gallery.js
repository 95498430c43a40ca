// The gallery: every finished job of the user, newest first, searchable by prompt.

import { api, outputsOf } from "./api.js";
import { ago, debounce, fill, h, toast } from "./dom.js";
import { mediaElement } from "./feed.js";

const PAGE = 24;

export class Gallery {
  constructor(studio) {
    this.studio = studio;
    this.grid = document.getElementById("gallery-grid");
    this.search = document.getElementById("gallery-search");
    this.more = document.getElementById("gallery-more");
    this.count = document.getElementById("gallery-count");
    this.cursor = null;
    this.asked = 0;
    this.shown = 0;
    this.search.addEventListener("input", debounce(() => this.reload(), 250));
    this.more.addEventListener("click", () => this.page());
  }

  reload() {
    this.cursor = null;
    this.shown = 0;
    fill(this.grid);
    return this.page();
  }

  async page() {
    const ticket = ++this.asked;
    const params = new URLSearchParams({ state: "done", limit: String(PAGE) });
    const q = this.search.value.trim();
    if (q) params.set("q", q);
    if (this.cursor) params.set("before", this.cursor);
    try {
      const page = await api("GET", `/v1/jobs?${params}`);
      if (ticket !== this.asked) return;
      for (const job of page.data) this.grid.append(this.card(job));
      this.shown += page.data.length;
      this.cursor = page.next_cursor;
      this.more.hidden = !this.cursor;
      fill(this.count, this.shown ? `${this.shown}${this.cursor ? "+" : ""} found`
        : q ? `nothing matches “${q}”` : "no finished jobs yet");
    } catch (error) {
      toast(error.message, "error");
    }
  }

  card(job) {
    const outputs = outputsOf(job);
    const cover = outputs[0];
    const grid = job.result?.grids?.[0];
    const shown = grid && outputs.length > 1 ? { ...cover, url: grid.url, name: grid.name } : cover;
    const prompt = job.prompt ?? cover?.prompt ?? "";
    return h("button", {
      type: "button",
      class: "gallery-card",
      dataset: { jobId: job.id },
      "aria-label": `Open ${job.kind}: ${prompt}`,
      onclick: () => this.studio.panel.open(job, cover?.index ?? 0),
    },
    h("div", { class: "gallery-media" }, shown ? mediaElement(shown, { alt: "", controls: false })
      : null),
    h("div", { class: "gallery-text" },
      h("p", { class: "gallery-prompt" }, prompt),
      h("p", { class: "muted small" }, `${job.kind} · ${outputs.length} ${outputs.length === 1
        ? "file" : "files"} · ${ago(job.created_at)}`)));
  }
}
