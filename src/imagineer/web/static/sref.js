// Style references from the prompt box: upload an image and write `--sref upload:ID` in.

import { api, ApiError } from "./api.js";
import { toast } from "./dom.js";

/** The upload button beside the prompt; `composer` gets the reference when one is kept. */
export class StyleUpload {
  constructor(studio, composer) {
    this.studio = studio;
    this.composer = composer;
    this.button = document.getElementById("sref-upload");
    this.file = document.getElementById("sref-file");
    this.button.addEventListener("click", () => this.file.click());
    this.file.addEventListener("change", () => {
      const [chosen] = this.file.files;
      this.file.value = ""; // choosing the same file again is a new upload
      if (chosen) this.upload(chosen);
    });
  }

  async upload(file) {
    const form = new FormData();
    form.append("image", file);
    this.button.disabled = true;
    this.button.setAttribute("aria-busy", "true");
    try {
      const kept = await api("POST", "/v1/uploads", form);
      this.composer.addStyleReference(kept.sref);
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) this.studio.needKey(error.message);
      toast(`Style reference not uploaded: ${error.message}`, "error");
    } finally {
      this.button.disabled = false;
      this.button.removeAttribute("aria-busy");
    }
  }
}

/**
 * The prompt with `ref` added: to the end of its --sref list if it has one (a parameter may be
 * given once), else as a new --sref at its end. `caret`: where typing goes on; an empty prompt
 * keeps it at the start, before the parameter, where the prompt's text belongs.
 */
export function withStyleReference(text, ref) {
  const found = /(^|\s)--sref(?=\s|$)/.exec(text);
  if (!found) {
    const base = text.trimEnd();
    const added = `${base} --sref ${ref}`;
    return { text: added, caret: base ? added.length : 0 };
  }
  const start = found.index + found[0].length;
  const next = text.slice(start).search(/\s--?[a-z]/i);
  const end = next < 0 ? Math.max(start, text.trimEnd().length) : start + next;
  const added = `${text.slice(0, end)} ${ref}`;
  return { text: added + text.slice(end), caret: added.length };
}

/** Where a refused reference sits in the prompt (the server's message names it first), or
 * null: `--sref upload:ab12: you have no upload…` marks `upload:ab12`. */
export function refusedSpan(text, message) {
  const named = /^--sref (\S+): /.exec(message);
  const list = /(^|\s)--sref\s/.exec(text);
  if (!named || !list) return null;
  const ref = named[1];
  for (let at = text.indexOf(ref, list.index); at >= 0; at = text.indexOf(ref, at + 1)) {
    const before = text[at - 1];
    const after = text[at + ref.length];
    if (/\s/.test(before ?? "") && (after === undefined || /[\s:]/.test(after))) {
      return [at, at + ref.length];
    }
  }
  return null;
}
