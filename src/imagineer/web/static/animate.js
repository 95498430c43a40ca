// The Animate dialog under an image's Animate button: motion, clip length, loop, and an image
// to end on chosen from the gallery; it queues POST /v1/jobs/{id}/animate with the choices.

import { api, outputsOf } from "./api.js";
import { fill, h } from "./dom.js";
import { mediaElement } from "./feed.js";

const MOTIONS = [["low", "Low motion", "A slow drift"],
  ["high", "High motion", "About three times faster"]];
const PICKER_JOBS = 24; // finished jobs whose images the end picker offers

/** A number field's limits as the server's OpenAPI schema states them:
 * {min, max, value} (each undefined when the schema does not say). */
export function limitsOf(schema, name) {
  const field = schema?.properties?.[name] ?? {};
  return { min: field.minimum, max: field.maximum, value: field.default };
}

/** "5 s", "2.5 s". */
export function secondsText(seconds) {
  return `${Number(seconds)} s`;
}

/** Open the dialog for image `output` of `job` under `anchor`; any other one closes. */
export function openAnimate(studio, job, output, anchor) {
  document.querySelector(".popover")?.dispatchEvent(new Event("close"));
  new AnimateDialog(studio, job, output, anchor);
}

class AnimateDialog {
  constructor(studio, job, output, anchor) {
    this.studio = studio;
    this.job = job;
    this.output = output;
    this.anchor = anchor;
    this.end = null; // {job, output}: the image the clip ends on
    const n = output.index + 1;
    const { min, max, value } = limitsOf(studio.features.animateBody, "seconds");
    this.seconds = h("input", { type: "number", id: "animate-seconds", class: "num", required: true,
      min, max, step: "any", value: value ?? 5, inputmode: "decimal",
      oninput: () => fill(this.el.querySelector(".field-error")) });
    this.loop = h("input", { type: "checkbox", id: "animate-loop",
      onchange: () => this.loop.checked && this.setEnd(null) });
    this.endLabel = h("span", { class: "end-choice" });
    this.chooseButton = h("button", { type: "button", class: "link", id: "animate-choose-end",
      "aria-label": "Choose an end image from the gallery", onclick: () => this.togglePicker() });
    this.picker = h("div", { class: "picker", role: "group", "aria-label": "Images to end on",
      hidden: true });
    this.el = h("form", { class: "popover animate-dialog", role: "dialog",
      "aria-label": `Animate image ${n}`, novalidate: true,
      onsubmit: (event) => this.submit(event) },
    h("p", { class: "popover-title" }, `Animate image ${n}`),
    h("fieldset", { class: "seg" }, h("legend", {}, "Motion"),
      MOTIONS.map(([motion, label, tip], i) => h("label", { title: tip },
        h("input", { type: "radio", name: "motion", value: motion, checked: i === 0 }), label))),
    h("div", { class: "field-row" },
      h("label", { for: "animate-seconds", class: "field-name" }, "Length"),
      h("span", { class: "num-unit" }, this.seconds, "s"),
      min !== undefined && max !== undefined
        ? h("span", { class: "muted small" }, `${min} to ${max} s`) : null),
    h("div", { class: "field-row" },
      h("label", { class: "check" }, this.loop, "Loop: end where it starts")),
    h("div", { class: "field-row end-row" },
      h("span", { class: "field-name" }, "End on"), this.endLabel, this.chooseButton),
    this.picker,
    h("p", { class: "field-error", role: "alert" }),
    h("div", { class: "popover-foot" },
      h("button", { type: "button", class: "ghost", onclick: () => this.close() }, "Cancel"),
      h("button", { type: "submit", class: "primary" }, "Animate")));
    this.outside = (event) => {
      if (!this.el.contains(event.target)) this.close();
    };
    this.escape = (event) => {
      if (event.key === "Escape") {
        event.stopPropagation(); // Escape closes the dialog, not the details panel under it
        this.close();
      }
    };
    this.el.addEventListener("close", () => this.close());
    this.setEnd(null);
    document.body.append(this.el);
    this.place();
    document.addEventListener("pointerdown", this.outside, true);
    document.addEventListener("keydown", this.escape, true);
    this.el.querySelector("input[name=motion]").focus();
  }

  place() {
    const box = this.anchor.getBoundingClientRect();
    const el = this.el;
    const below = box.bottom + 6 + el.offsetHeight <= window.innerHeight;
    el.style.left = `${Math.max(8, Math.min(box.left, window.innerWidth - el.offsetWidth - 8))}px`;
    el.style.top = `${Math.max(8, below ? box.bottom + 6 : box.top - 6 - el.offsetHeight)}px`;
  }

  close() {
    this.el.remove();
    document.removeEventListener("pointerdown", this.outside, true);
    document.removeEventListener("keydown", this.escape, true);
  }

  /** Choose the image to end on (null: none); a chosen end turns the loop off. */
  setEnd(choice) {
    this.end = choice;
    if (choice) this.loop.checked = false;
    const o = choice?.output;
    const prompt = choice ? choice.job.prompt ?? o.prompt ?? "" : "";
    fill(this.endLabel, o
      ? [h("span", { class: "end-thumb" }, mediaElement(o, { alt: "", controls: false })),
        h("span", { class: "end-text", title: prompt }, `Image ${o.index + 1} · ${prompt}`),
        h("button", { type: "button", class: "link", "aria-label": "Clear the end image",
          onclick: () => this.setEnd(null) }, "Clear")]
      : h("span", { class: "muted end-text" }, "None"));
    fill(this.chooseButton, o ? "Change…" : "Choose from gallery…");
    this.picker.hidden = true;
    if (this.el.isConnected) this.place();
  }

  async togglePicker() {
    if (!this.picker.hidden) {
      this.picker.hidden = true;
      return;
    }
    this.picker.hidden = false;
    fill(this.picker, h("p", { class: "muted small" }, "Loading your images…"));
    this.place();
    try {
      const page = await api("GET", `/v1/jobs?state=done&limit=${PICKER_JOBS}`);
      const thumbs = page.data.flatMap((job) => outputsOf(job)
        .filter((o) => o.kind === "image")
        .map((o) => this.thumb(job, o)));
      fill(this.picker, thumbs.length ? thumbs
        : h("p", { class: "muted small" }, "No finished images yet."));
    } catch (error) {
      fill(this.picker, h("p", { class: "job-error" }, error.message));
    }
    this.place();
  }

  thumb(job, o) {
    const prompt = job.prompt ?? o.prompt ?? "";
    return h("button", { type: "button", class: "thumb", title: prompt,
      "aria-label": `End on image ${o.index + 1} of “${prompt}”`,
      onclick: () => this.setEnd({ job, output: o }) },
    mediaElement(o, { alt: "", controls: false }));
  }

  submit(event) {
    event.preventDefault();
    const error = this.el.querySelector(".field-error");
    if (!this.seconds.checkValidity()) {
      const { min, max } = this.seconds;
      fill(error, `Length: give a number of seconds${min && max ? ` from ${min} to ${max}` : ""}.`);
      this.seconds.focus();
      return;
    }
    const body = {
      image: this.output.index,
      motion: this.el.querySelector("input[name=motion]:checked").value,
      seconds: Number(this.seconds.value),
    };
    if (this.loop.checked) body.loop = true;
    if (this.end) body.end = { job: this.end.job.id, image: this.end.output.index };
    this.close();
    this.studio.actions.derive(this.job, "animate", body);
  }
}
