// The details panel of one output: the image or clip, its recipe, its actions, and "AI info":
// what /v1/verify reads from the file's manifest, watermark, labels and recipe.

import { api, media, outputsOf } from "./api.js";
import { fill, h } from "./dom.js";
import { actionButton, mediaElement } from "./feed.js";

const FINDINGS = {
  manifest_valid: ["good", "Signed as AI-generated"],
  edited_after_signing: ["warn", "AI-generated, edited after signing"],
  manifest_invalid: ["bad", "Manifest does not validate"],
  watermark_only: ["warn", "Watermark only"],
  labels_only: ["warn", "Labels only"],
  no_marks: ["bad", "No marks found"],
};

export class Panel {
  constructor(studio) {
    this.studio = studio;
    this.el = document.getElementById("panel");
    this.body = document.getElementById("panel-body");
    this.title = document.getElementById("panel-title");
    this.token = 0;
    document.getElementById("panel-close").addEventListener("click", () => this.close());
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && !this.el.hidden) this.close();
    });
  }

  open(job, index) {
    const outputs = outputsOf(job);
    const output = outputs.find((o) => o.index === index) ?? outputs[0];
    if (!output) return;
    const token = ++this.token;
    this.el.hidden = false;
    document.body.classList.add("panel-open");
    const noun = output.kind === "video" ? "Clip" : "Image";
    fill(this.title, outputs.length > 1 ? `${noun} ${output.index + 1} of ${outputs.length}`
      : noun);
    const verdict = h("div", { class: "ai-info", id: "ai-info", "aria-busy": "true" },
      h("p", { class: "muted" }, "Reading the file's marks…"));
    fill(this.body,
      h("div", { class: "panel-media" }, mediaElement(output, { alt: output.prompt ?? "" })),
      outputs.length > 1 ? this.strip(job, outputs, output) : null,
      h("p", { class: "panel-prompt" }, output.prompt ?? job.prompt ?? ""),
      facts(job, output),
      h("div", { class: "panel-actions" }, [
        ...this.studio.actions.list(job, output).map((spec) => actionButton(fullLabel(spec), "act wide")),
        output.kind === "image" ? actionButton(["Upscale 4x", `Upscale image ${output.index + 1} 4x`,
          () => this.studio.actions.upscale(job, output, 4), { tip: "Upscale 4x" }], "act wide") : null,
        download(output),
        ...(output.kind === "video" ? clipFiles(job, output) : []),
      ]),
      h("section", { class: "provenance", "aria-labelledby": "ai-info-title" },
        h("h3", { id: "ai-info-title" }, "AI info"), verdict));
    this.verify(output, verdict, token);
  }

  strip(job, outputs, current) {
    return h("div", { class: "strip" }, outputs.map((o) => h("button", {
      type: "button",
      class: o.index === current.index ? "thumb current" : "thumb",
      "aria-label": `Show image ${o.index + 1}`,
      onclick: () => this.open(job, o.index),
    }, mediaElement(o, { alt: "", controls: false }))));
  }

  async verify(output, box, token) {
    try {
      const blob = await media.blob(output.url);
      const form = new FormData();
      form.append("file", blob, output.name);
      const verdict = await api("POST", "/v1/verify", form);
      if (token === this.token) fill(box, verdictView(verdict));
    } catch (error) {
      if (token === this.token) fill(box, h("p", { class: "job-error" }, error.message));
    } finally {
      box.setAttribute("aria-busy", "false");
    }
  }

  close() {
    this.token += 1;
    this.el.hidden = true;
    document.body.classList.remove("panel-open");
  }
}

function fullLabel([label, name, handler, options]) {
  const long = { Subtle: "Vary subtle", Strong: "Vary strong", Upscale: "Upscale 2x" };
  return [long[label] ?? label, name, handler, options];
}

function facts(job, output) {
  const rows = [
    ["Seed", output.seed],
    ["Size", output.width ? `${output.width} × ${output.height}` : null],
    ["Length", output.frame_count ? `${output.seconds} s · ${output.frame_count} frames at ${output.fps} fps` : null],
    ["Format", output.format ? output.format.toUpperCase() : null],
    ["Model", job.result?.model_id],
    ["Engine", job.result?.engine],
    ["Job", `${job.kind} · ${job.id}`],
    ["Made", job.finished_at ? new Date(job.finished_at).toLocaleString() : null],
  ].filter(([, value]) => value !== null && value !== undefined);
  return h("dl", { class: "facts" }, rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, String(v))]));
}

function download(output, label = "Download") {
  const link = h("a", { class: "act wide", download: output.name, href: "#" }, label);
  media.url(output.url).then((url) => (link.href = url), () => link.remove());
  return link;
}

/** A clip's other files: its recipe, poster frame and contact sheet. */
function clipFiles(job, output) {
  const files = [[output.recipe, "Recipe"], [job.result?.poster, "Poster"],
    [job.result?.contact_sheet, "Contact sheet"]];
  return files.filter(([file]) => file).map(([file, label]) => download(file, label));
}

function verdictView(v) {
  const [tone, title] = FINDINGS[v.finding] ?? ["warn", v.finding];
  const manifest = v.manifest ?? {};
  const wm = v.watermark;
  const checks = [
    ["C2PA manifest", manifest.present
      ? `${manifest.validation_state ?? "unknown"}${manifest.untrusted_signer ? " (signer not in a trust list)" : ""}`
      : "none", manifest.present && ["Valid", "Trusted"].includes(manifest.validation_state)],
    ["Action", (manifest.actions ?? []).join(", ") || "—", null],
    ["Source type", shortType(manifest.digital_source_type ?? v.xmp?.digital_source_type), null],
    ["Watermark", wm ? (wm.found ? `found (payload ${wm.payload})` : "not found")
      : (v.watermark_note || "not read"), wm ? wm.found : null],
    ["IPTC / XMP", v.xmp ? `${shortType(v.xmp.digital_source_type)}${v.xmp.credit ? `, credit “${v.xmp.credit}”` : ""}`
      : "none", v.xmp ? true : null],
    ["Recipe", v.recipe_json ? `from ${v.recipe_source}` : "none", v.recipe_json ? true : null],
  ];
  const ingredients = (manifest.ingredients ?? []).map((i) =>
    i.relationship === "parentOf" ? i.title : `${i.title} (${i.relationship})`);
  return [
    h("div", { class: `verdict ${tone}`, dataset: { finding: v.finding } },
      h("span", { class: "verdict-title" }, title),
      h("span", { class: "verdict-ai" }, v.ai_generated ? "AI-generated" : "not shown as AI-made")),
    h("p", { class: "verdict-summary" }, v.summary),
    h("dl", { class: "facts checks" }, checks.map(([k, value, ok]) => [
      h("dt", {}, k),
      h("dd", { class: ok === true ? "ok" : ok === false ? "no" : "" }, value),
    ])),
    ingredients.length ? h("p", { class: "muted small ingredients" }, "Made from ",
      ingredients.join("; ")) : null,
    manifest.signer ? h("p", { class: "muted small" }, `Signed by ${manifest.signer}`) : null,
    v.recipe_json ? h("details", { class: "recipe" }, h("summary", {}, "Recipe"),
      h("pre", {}, JSON.stringify(JSON.parse(v.recipe_json), null, 2))) : null,
  ];
}

function shortType(uri) {
  if (!uri) return "—";
  return uri.split("/").pop().replace(/([a-z])([A-Z])/g, "$1 $2").toLowerCase();
}
