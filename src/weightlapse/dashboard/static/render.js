// Drawing: the frame canvas in the figures' colour policy, charts, the tensor tree.
import { state } from "./state.js";

export const $ = (id) => document.getElementById(id);

export function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text; // names are text, never HTML
  if (cls) node.className = cls;
  return node;
}

let plotlyStarted = false;
let plotlyLoaded;
export const plotlyReady = new Promise((resolve) => { plotlyLoaded = resolve; });
export function loadPlotly() {
  if (plotlyStarted) return;
  plotlyStarted = true;
  const script = document.createElement("script");
  script.src = "/vendor/plotly.min.js";
  script.onload = plotlyLoaded;
  document.head.append(script);
}

export function plotLayout(x, y, extra = {}) {
  return {
    margin: { l: 50, r: 20, t: 10, b: 40 }, xaxis: { title: { text: x } },
    yaxis: { title: { text: y } }, showlegend: true, ...extra,
  };
}

// The diverging, symmetric colour policy of the figures (seismic), with NaN green,
// +Inf magenta and -Inf cyan: colours no finite value takes.
const ANCHORS = [[0, 0, 76], [0, 0, 255], [255, 255, 255], [255, 0, 0], [128, 0, 0]];
const LUT = Array.from({ length: 256 }, (_, i) => {
  const x = (i / 255) * (ANCHORS.length - 1);
  const k = Math.min(Math.floor(x), ANCHORS.length - 2);
  const t = x - k;
  return ANCHORS[k].map((c, j) => Math.round(c + (ANCHORS[k + 1][j] - c) * t));
});
const NAN_RGB = [0, 180, 0], POSINF_RGB = [255, 0, 255], NEGINF_RGB = [0, 229, 255];

export function heatmap(canvasId, frame, title) {
  const canvas = $(canvasId);
  canvas.width = frame.cols;
  canvas.height = frame.rows;
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(frame.cols, frame.rows);
  const limit = state.limit;
  for (let i = 0; i < frame.data.length; i++) {
    const v = frame.data[i];
    let rgb;
    if (Number.isNaN(v)) rgb = NAN_RGB;
    else if (v === Infinity) rgb = POSINF_RGB;
    else if (v === -Infinity) rgb = NEGINF_RGB;
    else rgb = LUT[Math.max(0, Math.min(255, Math.round(((v + limit) / (2 * limit)) * 255)))];
    image.data.set(rgb, i * 4);
    image.data[i * 4 + 3] = 255;
  }
  ctx.putImageData(image, 0, 0);
  $(`${canvasId.replace("-canvas", "")}-note`).textContent =
    `${title} · ${frame.rows}×${frame.cols} · blue −${limit.toPrecision(3)} … red +${limit.toPrecision(3)}`;
}

export function moveCursors(step) {
  if (!window.Plotly) return;
  const cursor = { shapes: [{ type: "line", x0: step, x1: step, yref: "paper", y0: 0, y1: 1,
    line: { color: "black", width: 1 } }] };
  for (const id of ["scalars", "stats", "hist"]) {
    if ($(id).data) Plotly.relayout(id, cursor);
  }
}

export function renderTree(onSelect) {
  const tree = $("tree");
  tree.replaceChildren();
  for (const layer of state.info.layers) {
    if (!layer.tensors.some((t) => t.kinds.includes("param"))) continue;
    const details = el("details");
    details.open = true;
    details.append(el("summary", layer.name || "(model)"));
    for (const tensor of layer.tensors) {
      if (!tensor.kinds.includes("param")) continue;
      const button = el("button", tensor.name, "tensor");
      button.append(el("small", tensor.shape.join("×")));
      button.dataset.name = tensor.name;
      button.onclick = () => onSelect(tensor.name);
      details.append(button);
    }
    tree.append(details);
  }
}

// Views of a tensor (the server's registry), then the probe inputs' activations and maps
// where they were recorded.
export function renderViewChoices() {
  const select = $("view");
  const chosen = select.value;
  select.replaceChildren();
  for (const view of state.info.views) {
    const option = el("option", view);
    option.value = view;
    select.append(option);
  }
  for (const layer of state.info.layers) {
    const view = { activation: "activations", attribution: "attributions" }[layer.name];
    if (!view) continue;
    for (const tensor of layer.tensors) {
      const option = el("option", `${view}: ${tensor.name}`);
      option.value = `${view}\n${tensor.name}`;
      select.append(option);
    }
  }
  if ([...select.options].some((o) => o.value === chosen)) select.value = chosen;
}
