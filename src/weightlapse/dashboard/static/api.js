// The server's HTTP API (dashboard/api.py): JSON, and snapshot frames as float32 bytes.
import { state } from "./state.js";

const enc = encodeURIComponent;
export const runPath = (name) => name.split("/").map(enc).join("/");

export async function getJSON(url) {
  const response = await fetch(url, { cache: "no-store" });
  if (!response.ok) throw new Error((await response.json()).error || response.statusText);
  return response.json();
}

export const runs = () => getJSON("/api/runs");
export const info = (run) => getJSON(`/api/run/info/${runPath(run)}`);
export const scalars = (run) => getJSON(`/api/run/scalars/${runPath(run)}`);
const tensorQuery = (tensor) => `?tensor=${enc(tensor)}&kind=param`;
export const stats = (run, tensor) => getJSON(`/api/run/stats/${runPath(run)}${tensorQuery(tensor)}`);
export const histograms = (run, tensor) =>
  getJSON(`/api/run/histograms/${runPath(run)}${tensorQuery(tensor)}`);

export function viewURL(run, view, tensor, step) {
  const q = new URLSearchParams({ tensor, step: String(step) });
  return `/api/run/view/${enc(view)}/${runPath(run)}?${q}`;
}

export const events = (run) => new EventSource(`/api/events?run=${enc(run || "")}`);

// One request per (run, tensor, step), shared by whoever asks while it is on its way.
export async function fetchFrame(run, tensor, step) {
  const key = `${run}\n${tensor}\n${step}`;
  if (!state.frames.has(key)) {
    state.frames.set(key, (async () => {
      const url = `/api/run/frame/${runPath(run)}?tensor=${enc(tensor)}&step=${step}`;
      const response = await fetch(url);
      if (!response.ok) return null;
      const shape = response.headers.get("X-Shape").split(",").map(Number);
      const [rows, cols] = shape;
      const channels = shape[2] || 1;
      const [lo, hi] = response.headers.get("X-Range").split(",").map(Number);
      const bytes = await response.arrayBuffer();
      const n = rows * cols * channels;
      const data = new Float32Array(bytes, 0, n);
      const gaps = new Uint8Array(bytes, n * 4, rows * cols);
      let sum = 0;
      for (let i = 0; i < n; i++) if (!Number.isNaN(data[i])) sum += data[i];
      return { data, gaps, rows, cols, channels, lo, hi, sum,
               shared: response.headers.get("X-Shared") === "1",
               view: response.headers.get("X-View"),
               title: decodeURIComponent(response.headers.get("X-Title") || ""),
               step: Number(response.headers.get("X-Step")) };
    })());
  }
  return state.frames.get(key);
}
