// The studio's client of the imagineer HTTP API: the key, JSON calls, media, job events.

const KEY_STORAGE = "imagineer.apiKey";
const VIDEO_SUFFIXES = [".mp4", ".webm", ".mov", ".gif"];

/** The API key kept in this browser (null: none, e.g. in local mode). */
export const keys = {
  get() {
    return localStorage.getItem(KEY_STORAGE);
  },
  set(key) {
    localStorage.setItem(KEY_STORAGE, key);
    media.clear();
  },
  forget() {
    localStorage.removeItem(KEY_STORAGE);
    media.clear();
  },
};

function authHeaders() {
  const key = keys.get();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

/** An error answer of the API: status, and the body's {message, code, param, …}. */
export class ApiError extends Error {
  constructor(status, body) {
    const error = body?.error ?? {};
    super(error.message ?? `the server answered ${status}`);
    this.status = status;
    this.code = error.code ?? null;
    this.error = error;
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** fetch with the key; waits out short 429s (the server says how long in Retry-After). */
async function send(path, init = {}) {
  for (let attempt = 0; ; attempt += 1) {
    const response = await fetch(path, { ...init, headers: { ...authHeaders(), ...init.headers } });
    const wait = Number(response.headers.get("Retry-After") ?? "NaN");
    if (response.status !== 429 || attempt >= 3 || !(wait <= 5)) return response;
    await sleep(wait * 1000);
  }
}

/** Call the API; JSON in and out. Throws ApiError for error answers. */
export async function api(method, path, body, { signal } = {}) {
  const init = { method, signal, headers: {} };
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await send(path, init);
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

/** Media files need the key too, so <img>/<video> get blob: URLs fetched with it. */
export const media = {
  cache: new Map(),
  url(path) {
    if (!this.cache.has(path)) {
      const made = this.blob(path).then((blob) => URL.createObjectURL(blob));
      made.catch(() => this.cache.delete(path));
      this.cache.set(path, made);
    }
    return this.cache.get(path);
  },
  async blob(path) {
    const response = await send(path);
    if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
    return response.blob();
  },
  clear() {
    for (const made of this.cache.values()) made.then((url) => URL.revokeObjectURL(url), () => {});
    this.cache.clear();
  },
};

/** What a job made, in order: {kind: "image" | "video", index, name, url, …}. */
export function outputsOf(job) {
  const result = job.result;
  if (!result) return [];
  const isVideo = (name) => VIDEO_SUFFIXES.some((s) => name.toLowerCase().endsWith(s));
  const images = (result.images ?? []).map((file, i) => ({
    ...file,
    index: file.index ?? i,
    kind: isVideo(file.name) ? "video" : "image",
  }));
  const clips = [...(result.videos ?? []), ...(result.clips ?? [])].map((file, i) => ({
    ...file,
    index: file.index ?? i,
    kind: "video",
    poster: result.poster ?? null,
  }));
  return [...images, ...clips];
}

/**
 * Follow a job's Server-Sent Events until it ends; resolves with the finished job (null if it
 * was deleted). The stream is read with fetch, not EventSource, because EventSource cannot send
 * the Authorization header. If the stream breaks, the job is polled instead.
 */
export async function followJob(id, { onState, onPreview, signal } = {}) {
  try {
    const response = await send(`/v1/jobs/${encodeURIComponent(id)}/events`, { signal });
    if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value.replaceAll("\r\n", "\n");
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const { event, data } = parseEvent(buffer.slice(0, cut));
        buffer = buffer.slice(cut + 2);
        if (event === "state") onState?.(data);
        else if (event === "preview") onPreview?.(data);
        else if (event === "end") return data;
        else if (event === "deleted") return null;
      }
    }
  } catch (error) {
    if (signal?.aborted || (error instanceof ApiError && error.status < 500)) throw error;
  }
  return pollJob(id, { onState, signal });
}

function parseEvent(block) {
  let event = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) continue; // a keep-alive comment
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  return { event, data: data.length ? JSON.parse(data.join("\n")) : null };
}

async function pollJob(id, { onState, signal }) {
  for (;;) {
    if (signal?.aborted) throw new DOMException("aborted", "AbortError");
    let job;
    try {
      job = await api("GET", `/v1/jobs/${encodeURIComponent(id)}`, undefined, { signal });
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return null;
      throw error;
    }
    if (["done", "failed", "cancelled"].includes(job.state)) return job;
    onState?.({ id, state: job.state, step: job.progress.step, total: job.progress.total });
    await sleep(1000);
  }
}

/** Which optional routes this server has (read from its OpenAPI description). */
export async function features() {
  try {
    const response = await fetch("/openapi.json");
    const spec = await response.json();
    const paths = Object.keys(spec.paths ?? {});
    const animate = paths.find((p) => /^\/v1\/jobs\/\{[^}]+\}\/animate$/.test(p)) ?? null;
    const animateBody = animate ? bodySchema(spec, spec.paths[animate].post) : null;
    const reel = paths.includes("/v1/videos/reel") ? "/v1/videos/reel" : null;
    const reelBody = reel ? bodySchema(spec, spec.paths[reel].post) : null;
    return { animate, animateBody, reel, reelBody };
  } catch {
    return { animate: null, animateBody: null, reel: null, reelBody: null };
  }
}

function bodySchema(spec, operation) {
  let schema = operation?.requestBody?.content?.["application/json"]?.schema ?? null;
  const ref = schema?.$ref;
  if (ref) schema = spec.components?.schemas?.[ref.split("/").pop()] ?? null;
  return schema;
}
