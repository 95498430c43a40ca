// The feed of jobs on the Create view: live progress and previews over SSE, then the 2x2 grid
// (or the upscale, or the clip) with per-image actions.

import { openAnimate, secondsText } from "./animate.js";
import { api, ApiError, followJob, media, outputsOf } from "./api.js";
import { ago, fill, h, toast } from "./dom.js";

const FINISHED = ["done", "failed", "cancelled"];
const KIND_LABELS = { imagine: "Imagine", vary: "Vary", upscale: "Upscale", remix: "Remix",
  animate: "Animate", extend: "Extend", reel: "Reel" };
const VIDEO_KINDS = ["animate", "extend", "reel"];

/** The actions an output offers; shared by the grid tiles and the details panel. */
export class Actions {
  constructor(studio) {
    this.studio = studio;
  }

  async derive(job, verb, body) {
    try {
      const made = await api("POST", `/v1/jobs/${encodeURIComponent(job.id)}/${verb}`, body);
      this.studio.feed.add(made);
      this.studio.show("create");
      return made;
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) this.studio.needKey(error.message);
      toast(error.message, "error");
      return null;
    }
  }

  vary(job, output, strength) {
    return this.derive(job, "vary", { image: output.index, strength });
  }

  upscale(job, output, factor = 2) {
    return this.derive(job, "upscale", { image: output.index, factor });
  }

  remix(job, output) {
    this.studio.panel.close();
    this.studio.composer.startRemix(job, output);
  }

  get canAnimate() {
    return Boolean(this.studio.features.animate);
  }

  /** Animate asks first: motion, length, loop and an end image, in a dialog under its button. */
  chooseAnimate(job, output, anchor) {
    if (this.canAnimate) openAnimate(this.studio, job, output, anchor);
  }

  extend(job, output, seconds = 4) {
    return this.derive(job, "extend", { video: output.index, seconds });
  }

  info(job, output) {
    this.studio.panel.open(job, output.index);
  }

  /** The buttons for one output, as [label, aria name, handler, options]. */
  list(job, output) {
    const n = output.index + 1;
    if (output.kind === "video") {
      return [["Extend", `Extend clip ${n}`, () => this.extend(job, output),
        { tip: "Make it 4 seconds longer" }]];
    }
    const animateOff = !this.canAnimate;
    return [
      ["Subtle", `Vary (subtle) image ${n}`, () => this.vary(job, output, "subtle"),
        { tip: "Vary subtly: 4 close variations" }],
      ["Strong", `Vary (strong) image ${n}`, () => this.vary(job, output, "strong"),
        { tip: "Vary strongly: 4 bolder variations" }],
      ["Upscale", `Upscale image ${n}`, () => this.upscale(job, output, 2),
        { tip: "Upscale 2x" }],
      ["Remix", `Remix image ${n}`, () => this.remix(job, output),
        { tip: "Edit the prompt and render again" }],
      ["Animate", `Animate image ${n}`, (button) => this.chooseAnimate(job, output, button), {
        tip: animateOff ? "Video is not installed on this server" : "Animate into a short clip",
        disabled: animateOff,
        popup: "dialog",
      }],
    ].filter(() => output.kind === "image");
  }
}

/** A button that stays focusable when disabled, so its tooltip still shows. The handler
 * gets the button (a dialog, `popup`, opens under it). */
export function actionButton([label, name, handler, { tip, disabled, popup } = {}], cls = "act") {
  return h("button", {
    type: "button",
    class: cls,
    title: tip,
    "aria-label": name,
    "aria-disabled": disabled ? "true" : "false",
    "aria-haspopup": popup,
    onclick: (event) => {
      event.stopPropagation();
      if (!disabled) handler(event.currentTarget);
    },
  }, label);
}

export class Feed {
  constructor(studio) {
    this.studio = studio;
    this.root = document.getElementById("feed");
    this.cards = new Map();
  }

  /** Show the newest jobs and follow the unfinished ones. */
  async load() {
    const page = await api("GET", "/v1/jobs?limit=12");
    for (const job of page.data.reverse()) this.add(job);
    if (!this.cards.size) this.root.append(emptyState()); // a job queued meanwhile counts
  }

  add(job) {
    this.root.querySelector(".empty")?.remove();
    let card = this.cards.get(job.id);
    if (!card) {
      card = new JobCard(this.studio, job);
      this.cards.set(job.id, card);
      this.root.prepend(card.el);
    }
    card.update(job);
    if (!FINISHED.includes(job.state)) card.follow();
    return card;
  }

  remove(id) {
    this.cards.get(id)?.el.remove();
    this.cards.delete(id);
  }
}

function animateLabel(job) {
  return ["Animate", job.motion, job.seconds ? secondsText(job.seconds) : null,
    job.loop ? "loop" : null].filter(Boolean).join(" · ");
}

function emptyState() {
  return h("div", { class: "empty" },
    h("p", { class: "empty-title" }, "Nothing here yet"),
    h("p", { class: "muted" }, "Type a prompt above and press Enter: four images arrive here, ",
      "with live previews while they render."));
}

class JobCard {
  constructor(studio, job) {
    this.studio = studio;
    this.job = job;
    this.following = false;
    this.preview = null;
    this.el = h("article", { class: "job", dataset: { jobId: job.id, state: job.state } });
  }

  async follow() {
    if (this.following) return;
    this.following = true;
    try {
      const end = await followJob(this.job.id, {
        onState: (event) => this.update({ ...this.job, state: event.state,
          progress: { step: event.step, total: event.total, fraction: event.fraction } }),
        onPreview: (event) => {
          this.preview = event;
          this.update(this.job);
        },
      });
      if (end === null) this.studio.feed.remove(this.job.id);
      else this.update(end);
    } catch (error) {
      toast(`lost track of a job: ${error.message}`, "error");
    } finally {
      this.following = false;
    }
  }

  update(job) {
    this.job = job;
    this.el.dataset.state = job.state;
    fill(this.el, this.head(), this.body());
  }

  head() {
    const job = this.job;
    const outputs = outputsOf(job);
    const prompt = job.prompt ?? outputs[0]?.prompt
      ?? (VIDEO_KINDS.includes(job.kind) ? "with its source's prompt" : "");
    const kind = job.kind === "vary" && job.strength ? `Vary · ${job.strength}`
      : job.kind === "upscale" && job.factor ? `Upscale ${job.factor}x`
        : job.kind === "animate" && job.motion ? animateLabel(job)
          : job.kind === "reel" && job.seconds ? `Reel · ${secondsText(job.seconds)}`
            : KIND_LABELS[job.kind] ?? job.kind;
    const tools = [];
    if (!FINISHED.includes(job.state)) {
      tools.push(h("button", { type: "button", class: "link", onclick: () => this.cancel() },
        "Cancel"));
    } else {
      tools.push(h("button", { type: "button", class: "link", title: "Delete this job and its files",
        onclick: () => this.remove() }, "Delete"));
    }
    return h("header", { class: "job-head" },
      h("span", { class: `badge kind-${job.kind}` }, kind),
      h("p", { class: "job-prompt", title: prompt }, prompt || "—"),
      h("span", { class: `state state-${job.state}` }, job.state),
      h("time", { class: "muted", datetime: job.created_at }, ago(job.created_at)),
      tools);
  }

  body() {
    const job = this.job;
    if (job.state === "failed") {
      return h("p", { class: "job-error", role: "alert" }, job.error ?? "the job failed");
    }
    if (job.state === "cancelled") return h("p", { class: "muted" }, "Cancelled.");
    if (job.state !== "done") return this.progress();
    const all = outputsOf(job);
    // a clip written in several formats shows once (MP4 first); the panel has every file
    const outputs = all[0]?.kind === "video" ? all.slice(0, 1) : all;
    const notes = [...(job.result.warnings ?? []), ...(job.result.withheld ?? [])];
    return h("div", { class: "job-body" },
      h("div", { class: `results n${Math.min(outputs.length, 4)}` },
        outputs.map((output) => tile(this.studio, job, output))),
      notes.map((note) => h("p", { class: "note" }, note)));
  }

  progress() {
    const { step, total } = this.job.progress ?? {};
    const fraction = total ? step / total : 0;
    const video = VIDEO_KINDS.includes(this.job.kind);
    const label = this.job.state === "queued" ? "Queued"
      : !total ? "Starting…"
        : video ? `Rendering clip · ${Math.floor(fraction * 100)}%`
          : `Rendering · step ${step} of ${total}`;
    const stage = h("div", { class: "stage" });
    if (this.preview) {
      stage.append(h("img", { class: "preview", src: this.preview.image,
        alt: `Preview at step ${this.preview.step} of ${this.preview.total}` }));
    } else {
      stage.append(h("div", { class: "stage-empty shimmer" }));
    }
    return h("div", { class: "job-body" },
      h("div", { class: "progress", role: "progressbar", "aria-label": "Progress",
        "aria-valuemin": "0", "aria-valuemax": String(total ?? 0),
        "aria-valuenow": String(step ?? 0) },
      h("div", { class: "bar", style: { width: `${Math.round(fraction * 100)}%` } })),
      h("p", { class: "progress-label muted" }, label),
      stage);
  }

  async cancel() {
    try {
      this.update(await api("POST", `/v1/jobs/${encodeURIComponent(this.job.id)}/cancel`));
    } catch (error) {
      toast(error.message, "error");
    }
  }

  async remove() {
    try {
      await api("DELETE", `/v1/jobs/${encodeURIComponent(this.job.id)}`);
      this.studio.feed.remove(this.job.id);
    } catch (error) {
      toast(error.message, "error");
    }
  }
}

/** One output of a job: the image (or clip) with its action buttons over it. */
export function tile(studio, job, output) {
  if (output.kind === "video") return clipTile(studio, job, output);
  const ratio = output.width && output.height ? `${output.width} / ${output.height}` : "1 / 1";
  const label = `Image ${output.index + 1}`;
  const figure = h("figure", { class: "tile", style: { aspectRatio: ratio },
    dataset: { index: String(output.index) } });
  figure.append(mediaElement(output, { alt: `${label}: ${output.prompt ?? ""}`, controls: false }));
  const open = h("button", { type: "button", class: "tile-open", "aria-label": `Details of ${label}`,
    onclick: () => studio.actions.info(job, output) });
  const buttons = studio.actions.list(job, output).map((spec) => actionButton(spec));
  buttons.push(actionButton(["Info", `AI info of ${label.toLowerCase()}`,
    () => studio.actions.info(job, output), { tip: "Details and AI info" }]));
  figure.append(open, h("div", { class: "tile-actions" }, buttons));
  if (output.kind === "image" && output.width) {
    figure.append(h("span", { class: "tile-size" }, `${output.width}×${output.height}`));
  }
  return figure;
}

/** A clip: a looping player with its actions under it (a GIF shows as an image). */
function clipTile(studio, job, output) {
  const ratio = output.width && output.height ? `${output.width} / ${output.height}` : "1 / 1";
  const label = `Clip ${output.index + 1}`;
  const player = mediaElement(output, { alt: `${label}: ${output.prompt ?? ""}`, autoplay: true });
  const facts = [output.seconds ? `${output.seconds} s` : null,
    output.frame_count ? `${output.frame_count} frames` : null, output.format?.toUpperCase()];
  const buttons = studio.actions.list(job, output).map((spec) => actionButton(spec));
  buttons.push(actionButton(["Info", `AI info of ${label.toLowerCase()}`,
    () => studio.actions.info(job, output), { tip: "Details and AI info" }]));
  return h("figure", { class: "tile clip", dataset: { index: String(output.index) } },
    h("div", { class: "clip-frame", style: { aspectRatio: ratio } }, player),
    h("figcaption", { class: "clip-bar" },
      h("span", { class: "muted small" }, facts.filter(Boolean).join(" · ")),
      h("span", { class: "clip-actions" }, buttons)));
}

/** An <img> or <video> whose source is fetched with the key. */
export function mediaElement(output, { alt = "", controls = true, autoplay = false } = {}) {
  const playable = output.kind === "video" && output.format !== "gif";
  const el = playable
    ? h("video", { class: "media", controls, loop: true, muted: true, playsinline: true,
      autoplay, preload: "metadata", "aria-label": alt })
    : h("img", { class: "media loading", alt, decoding: "async" });
  if (playable) el.muted = true; // the property, not only the attribute, lets it autoplay
  if (playable && output.poster) {
    media.url(output.poster.url).then((url) => (el.poster = url), () => {});
  }
  media.url(output.url).then((url) => {
    el.src = url;
    el.classList.remove("loading");
  }, (error) => {
    el.classList.add("broken");
    el.title = error.message;
  });
  return el;
}
