// The studio's entry point: wires the views (Create, Gallery, API key) and the details panel.

import { api, ApiError, features, keys } from "./api.js";
import { fill, toast } from "./dom.js";
import { Actions, Feed } from "./feed.js";
import { Gallery } from "./gallery.js";
import { Panel } from "./panel.js";
import { Composer } from "./prompt.js";

class Studio {
  constructor() {
    this.features = { animate: null, animateBody: null, reel: null, reelBody: null };
    this.actions = new Actions(this);
    this.feed = new Feed(this);
    this.panel = new Panel(this);
    this.composer = new Composer(this);
    this.gallery = new Gallery(this);
    this.view = "create";
    for (const button of document.querySelectorAll("[data-view]")) {
      button.addEventListener("click", () => this.show(button.dataset.view));
    }
    this.keyForm();
  }

  async start() {
    this.features = await features();
    this.composer.render();
    this.health();
    try {
      await this.feed.load();
      this.authStatus();
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) this.needKey(error.message);
      else toast(error.message, "error");
    }
  }

  show(view) {
    this.view = view;
    for (const section of document.querySelectorAll(".view")) {
      section.hidden = section.id !== `view-${view}`;
    }
    for (const tab of document.querySelectorAll(".tab")) {
      if (tab.dataset.view === view) tab.setAttribute("aria-current", "page");
      else tab.removeAttribute("aria-current");
    }
    if (view === "gallery") this.gallery.reload();
    if (view === "key") document.getElementById("key-input").focus();
  }

  /** The server wants a key: say why on the key screen. */
  needKey(message) {
    fill(document.getElementById("key-status"), message);
    document.getElementById("key-status").className = "key-status bad";
    this.authStatus(false);
    this.show("key");
  }

  authStatus(ok = true) {
    const pill = document.getElementById("auth-status");
    const key = keys.get();
    pill.className = `pill ${ok ? "good" : "bad"}`;
    pill.textContent = !ok ? "Key needed" : key ? `Key …${key.slice(-4)}` : "Local mode";
  }

  keyForm() {
    const form = document.getElementById("key-form");
    const input = document.getElementById("key-input");
    const status = document.getElementById("key-status");
    const say = (text, tone) => {
      status.textContent = text;
      status.className = `key-status ${tone}`;
    };
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const key = input.value.trim();
      if (!key) {
        say("Paste a key first (it starts with imk_).", "bad");
        return;
      }
      keys.set(key);
      try {
        await api("GET", "/v1/jobs?limit=1");
        say("Key saved: the server accepts it.", "good");
        input.value = "";
        this.authStatus();
        fill(this.feed.root);
        this.feed.cards.clear();
        await this.feed.load();
      } catch (error) {
        say(error.message, "bad");
        this.authStatus(false);
      }
    });
    document.getElementById("key-forget").addEventListener("click", () => {
      keys.forget();
      say("Key forgotten: this browser sends none now.", "");
      this.authStatus();
    });
  }

  async health() {
    try {
      const health = await (await fetch("/healthz")).json();
      const note = document.getElementById("worker-note");
      note.hidden = health.worker === "running";
      fill(note, health.worker === "off"
        ? "This server only queues jobs: they run once an `imagineer jobs work` process is up."
        : "The server's worker has stopped: queued jobs wait until it restarts.");
    } catch {
      // the page still works; progress will show whether jobs run
    }
  }
}

const studio = new Studio();
window.studio = studio; // for the console
studio.start();
