// The prompt box: highlights the prompt language, checks it with the server as you type,
// shows errors inline at the bad token, takes style references, and queues imagine or remix jobs.

import { limitsOf } from "./animate.js";
import { api, ApiError } from "./api.js";
import { debounce, fill, h, toast } from "./dom.js";
import { refusedSpan, StyleUpload, withStyleReference } from "./sref.js";

const CHECK_DELAY_MS = 250;

export class Composer {
  constructor(studio) {
    this.studio = studio;
    this.form = document.getElementById("composer");
    this.input = document.getElementById("prompt");
    this.mirror = document.getElementById("prompt-mirror");
    this.status = document.getElementById("prompt-status");
    this.button = document.getElementById("generate");
    this.reelButton = document.getElementById("reel");
    this.reelSeconds = document.getElementById("reel-seconds");
    this.reelLength = document.getElementById("reel-length");
    this.reelLimits = null; // the server's limits, applied once the page knows them
    this.banner = document.getElementById("remix-banner");
    this.remix = null; // {job, output, original} while remixing
    this.check = null; // the last answer of /v1/prompts/parse, for the text it checked
    this.refused = null; // {text, error}: the server refused to queue exactly this text
    this.asked = 0; // answers to older questions are dropped
    this.busy = false;
    this.styles = new StyleUpload(studio, this);

    const later = debounce(() => this.runCheck(), CHECK_DELAY_MS);
    this.input.addEventListener("input", () => {
      this.render();
      later();
    });
    this.input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.form.requestSubmit();
      }
    });
    this.input.addEventListener("scroll", () => (this.mirror.scrollTop = this.input.scrollTop));
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    document.getElementById("remix-cancel").addEventListener("click", () => this.endRemix());
    this.reelButton.addEventListener("click", () => this.submit("reel"));
    this.reelSeconds.addEventListener("keydown", (event) => {
      if (event.key === "Enter") { // in the length box, Enter means the reel, not a grid
        event.preventDefault();
        this.submit("reel");
      }
    });
    this.render();
  }

  get text() {
    return this.input.value;
  }

  setText(text) {
    this.input.value = text;
    this.render();
    this.runCheck();
  }

  /** Write an uploaded style reference into the prompt, and carry on typing there. */
  addStyleReference(ref) {
    const { text, caret } = withStyleReference(this.text, ref);
    this.setText(text);
    this.input.focus();
    this.input.setSelectionRange(caret, caret);
  }

  /** Ask the server whether the prompt parses; show the answer if it is still current. */
  async runCheck() {
    const text = this.text;
    const ticket = ++this.asked;
    if (!text.trim()) {
      this.check = null;
      this.render();
      return;
    }
    try {
      const answer = await api("POST", "/v1/prompts/parse", { prompt: text });
      if (ticket !== this.asked) return;
      this.check = { text, ...answer };
    } catch (error) {
      if (ticket !== this.asked) return;
      this.check = null;
      if (error instanceof ApiError && error.status === 401) this.studio.needKey(error.message);
    }
    this.render();
  }

  /** The error that applies to the current text: a refusal of this very text, or the last
   * check's error if it was of this text. */
  currentError() {
    if (this.refused && this.refused.text === this.text) return this.refused.error;
    return this.check && this.check.text === this.text && !this.check.valid
      ? this.check.error
      : null;
  }

  render() {
    const text = this.text;
    const error = this.currentError();
    this.input.style.height = "auto";
    this.input.style.height = `${this.input.scrollHeight}px`;
    fill(this.mirror, highlight(text, error?.span ?? null), "\n");
    this.mirror.scrollTop = this.input.scrollTop;
    this.input.setAttribute("aria-invalid", error ? "true" : "false");
    this.button.disabled = this.busy || !text.trim() || Boolean(error);
    this.button.textContent = this.remix ? "Remix" : "Imagine";
    this.reelButton.hidden = Boolean(this.remix) || !this.studio.features.reel;
    this.reelButton.disabled = this.button.disabled;
    this.reelLength.hidden = this.reelButton.hidden;
    this.applyReelLimits();
    fill(this.status, this.statusLine(text, error));
  }

  /** The reel length's bounds and default, from the server's OpenAPI schema (once). */
  applyReelLimits() {
    const schema = this.studio.features.reelBody;
    if (!schema || this.reelLimits) return;
    this.reelLimits = limitsOf(schema, "seconds");
    const { min, max, value } = this.reelLimits;
    if (min !== undefined) this.reelSeconds.min = String(min);
    if (max !== undefined) this.reelSeconds.max = String(max);
    if (value !== undefined) this.reelSeconds.value = String(value);
    if (min !== undefined && max !== undefined) {
      this.reelLength.title = `How long the reel lasts: ${min} to ${max} seconds`;
    }
  }

  /** The reel length asked for, or null (and a message) when it is out of bounds. */
  reelLengthS() {
    if (this.reelSeconds.checkValidity() && this.reelSeconds.value !== "") {
      return Number(this.reelSeconds.value);
    }
    const { min, max } = this.reelSeconds;
    toast(`Reel length: give a number of seconds${min && max ? ` from ${min} to ${max}` : ""}.`,
      "error");
    this.reelSeconds.focus();
    return null;
  }

  statusLine(text, error) {
    if (error) return errorLine(error, (fixed) => this.setText(fixed), text);
    if (!text.trim() || !this.check || this.check.text !== text) {
      return this.remix ? h("span", { class: "hint" }, "Edit the prompt, or remix it as it is.")
        : h("span", { class: "hint" }, "Midjourney-style prompts: ",
          h("code", {}, "--ar 16:9"), " ", h("code", {}, "--seed 7"), " ",
          h("code", {}, "--no text"), " ", h("code", {}, "{red, blue}"), " ",
          h("code", {}, "::2"));
    }
    return summary(this.check.requests);
  }

  /** Queue the prompt: a grid (or a remix), or with what="reel" a reel. */
  async submit(what = "imagine") {
    const text = this.text.trim();
    if (!text || this.busy) return;
    const seconds = what === "reel" ? this.reelLengthS() : null;
    if (what === "reel" && seconds === null) return;
    this.busy = true;
    this.render();
    try {
      let job;
      if (this.remix) {
        const { job: source, output, original } = this.remix;
        const body = { image: output.index };
        if (text !== original.trim()) body.prompt = text;
        job = await api("POST", `/v1/jobs/${encodeURIComponent(source.id)}/remix`, body);
        this.endRemix(false);
      } else if (what === "reel") {
        job = await api("POST", "/v1/videos/reel", { prompt: text, seconds });
      } else {
        job = await api("POST", "/v1/jobs", { prompt: text });
      }
      this.studio.feed.add(job);
    } catch (error) {
      this.showSubmitError(error, text);
    } finally {
      this.busy = false;
      this.render();
    }
  }

  showSubmitError(error, text) {
    const inline = ["prompt_error", "content_policy_violation", "unsupported_request",
      "sref_refused"];
    if (error instanceof ApiError && inline.includes(error.code)) {
      // Shown under the prompt until it is edited: the same text would be refused again.
      const message = error.error.message.split("\n").pop();
      const { token = null, suggestion = null } = error.error;
      const span = error.error.span
        ?? (error.code === "sref_refused" ? refusedSpan(this.text, message) : null);
      this.refused = { text: this.text, error: { code: error.code, message, span, token, suggestion } };
      return;
    }
    if (error instanceof ApiError && error.status === 401) this.studio.needKey(error.message);
    toast(error.message, "error");
    if (text) this.input.focus();
  }

  /** Put an image's recipe prompt in the box; the next submit remixes that image. */
  startRemix(job, output) {
    this.remix = { job, output, original: output.prompt ?? job.prompt ?? "" };
    this.banner.hidden = false;
    fill(document.getElementById("remix-text"),
      "Remixing image ", String(output.index + 1), " — edit the prompt, then press Remix.");
    this.studio.show("create");
    this.setText(this.remix.original);
    this.input.focus();
    this.input.setSelectionRange(this.text.length, this.text.length);
  }

  endRemix(clear = true) {
    this.remix = null;
    this.banner.hidden = true;
    if (clear) this.setText("");
    this.render();
  }
}

/** The prompt as spans: text, --parameters and their values, ::weights, the bad token. */
function highlight(text, span) {
  const pieces = [];
  const pattern = /(\s--?[a-z][\w-]*|^--?[a-z][\w-]*)|(::\s*-?[\d.]*)|([{}])/gi;
  let at = 0;
  let inParams = false;
  for (const match of text.matchAll(pattern)) {
    if (match.index > at) pieces.push([inParams ? "value" : "text", at, match.index]);
    const kind = match[1] ? "param" : match[2] ? "weight" : "brace";
    if (match[1]) inParams = true;
    pieces.push([kind, match.index, match.index + match[0].length]);
    at = match.index + match[0].length;
  }
  if (at < text.length) pieces.push([inParams ? "value" : "text", at, text.length]);
  const out = [];
  for (const [kind, start, end] of pieces) {
    out.push(...splitAtSpan(kind, start, end, text, span));
  }
  if (span && span[0] === span[1]) {
    // A missing token: mark the place with a thin caret.
    const index = out.findIndex((node) => Number(node.dataset.start) >= span[0]);
    const caret = h("mark", { class: "bad empty" }, "\u200b");
    if (index < 0) out.push(caret);
    else out.splice(index, 0, caret);
  }
  return out;
}

function splitAtSpan(kind, start, end, text, span) {
  const piece = (k, a, b) => h("span", { class: `tok-${k}`, dataset: { start: String(a) } },
    text.slice(a, b));
  if (!span || span[0] === span[1] || span[1] <= start || span[0] >= end) {
    return [piece(kind, start, end)];
  }
  const a = Math.max(start, span[0]);
  const b = Math.min(end, span[1]);
  const parts = [];
  if (a > start) parts.push(piece(kind, start, a));
  parts.push(h("mark", { class: "bad", dataset: { start: String(a) } }, text.slice(a, b)));
  if (b < end) parts.push(piece(kind, b, end));
  return parts;
}

function errorLine(error, apply, text) {
  const line = h("span", { class: "prompt-error", id: "prompt-error" }, error.message);
  const parts = [h("span", { class: "error-icon", "aria-hidden": "true" }, "!"), line];
  if (error.suggestion && error.span && error.token) {
    const [start, end] = error.span;
    const fixed = text.slice(0, start) + error.suggestion + text.slice(end);
    parts.push(h("button", { type: "button", class: "chip fix", onclick: () => apply(fixed) },
      `Use ${error.suggestion}`));
  }
  return h("span", { class: "status-error" }, parts);
}

function summary(requests) {
  if (!requests.length) return h("span", { class: "hint" }, "");
  const first = requests[0];
  const params = first.request.params;
  const chips = [h("span", { class: "chip ok" }, "✓ ready")];
  const images = 4 * requests.length;
  chips.push(h("span", { class: "chip" }, params.video ? `${requests.length} clip${requests.length > 1 ? "s" : ""}` : `${images} images`));
  if (params.aspect) chips.push(h("span", { class: "chip" }, params.aspect.join(":")));
  if (params.seed !== null && params.seed !== undefined) {
    chips.push(h("span", { class: "chip" }, `seed ${params.seed}`));
  }
  if (params.model) chips.push(h("span", { class: "chip" }, params.model));
  if (params.quality !== 1) chips.push(h("span", { class: "chip" }, `quality ${params.quality}`));
  if (params.draft) chips.push(h("span", { class: "chip" }, "draft"));
  if (params.tile) chips.push(h("span", { class: "chip" }, "tile"));
  if (requests.length > 1) chips.push(h("span", { class: "chip" }, `${requests.length} prompts`));
  for (const warning of first.warnings) chips.push(h("span", { class: "chip warn" }, warning));
  return h("span", { class: "chips", title: requests.map((r) => r.canonical).join("\n") }, chips);
}
