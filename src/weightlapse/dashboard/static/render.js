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
const GAP_RGB = [110, 110, 110]; // between the cells of a mosaic: no weight takes it

// A frame is the server's mosaic of the tensor's semantic view (filter grid, per-unit
// images, matrix): values on one scale lo..hi (or RGB in [0, 1]) and a gap mask.
export function drawFrame(canvasId, frame, title) {
  const canvas = $(canvasId);
  canvas.width = frame.cols;
  canvas.height = frame.rows;
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(frame.cols, frame.rows);
  const { lo, hi, channels } = frame;
  const span = hi - lo || 1;
  for (let i = 0; i < frame.rows * frame.cols; i++) {
    let rgb;
    if (frame.gaps[i]) rgb = GAP_RGB;
    else if (channels === 3) {
      const [r, g, b] = [0, 1, 2].map((c) => frame.data[i * 3 + c]);
      rgb = Number.isNaN(r + g + b) ? NAN_RGB
        : [r, g, b].map((c) => Math.round(255 * Math.max(0, Math.min(1, c))));
    } else {
      const v = frame.data[i];
      if (Number.isNaN(v)) rgb = NAN_RGB;
      else if (v === Infinity) rgb = POSINF_RGB;
      else if (v === -Infinity) rgb = NEGINF_RGB;
      else rgb = LUT[Math.max(0, Math.min(255, Math.round(((v - lo) / span) * 255)))];
    }
    image.data.set(rgb, i * 4);
    image.data[i * 4 + 3] = 255;
  }
  ctx.putImageData(image, 0, 0);
  const scale = channels === 3 ? "colour: the signed weight per input channel, grey 0"
    : frame.shared ? `blue ${lo.toPrecision(3)} … red ${hi.toPrecision(3)}`
      : "each panel on its own scale";
  $(`${canvasId.replace("-canvas", "")}-note`).textContent =
    `${title} · ${frame.view} · ${frame.rows}×${frame.cols} px · ${scale}`;
}

export function moveCursors(step) {
  if (!window.Plotly) return;
  const cursor = { shapes: [{ type: "line", x0: step, x1: step, yref: "paper", y0: 0, y1: 1,
    line: { color: "black", width: 1 } }] };
  for (const id of ["scalars", "stats", "hist"]) {
    if ($(id).data) Plotly.relayout(id, cursor);
  }
}

// The tensors by layer, groups closed but the chosen tensor's; a search shows the
// matching tensors with their groups open. A name is shown without its layer's prefix
// (query.weight, not encoder.layer.0.attention.self.query.weight); the full name is on
// hover.
export function renderTree(onSelect) {
  const tree = $("tree");
  tree.replaceChildren();
  for (const layer of state.info.layers) {
    const tensors = layer.tensors.filter((t) => t.kinds.includes("param"));
    if (!tensors.length) continue;
    const details = el("details");
    details.dataset.layer = layer.name;
    const summary = el("summary", layer.name || "(model)");
    summary.title = `${layer.name || "(model)"}: ${tensors.length} tensors`;
    details.append(summary);
    for (const tensor of tensors) {
      const button = el("button", shortName(tensor.name, layer.name), "tensor");
      button.append(el("small", tensor.shape.join("×")));
      button.title = `${tensor.name} (${tensor.shape.join("×") || "scalar"})`;
      button.dataset.name = tensor.name;
      button.onclick = () => onSelect(tensor.name);
      details.append(button);
    }
    tree.append(details);
  }
  filterTree();
}

function shortName(name, layer) {
  for (const sep of [".", "/"]) {
    if (layer && name.startsWith(layer + sep)) return name.slice(layer.length + 1);
  }
  return name;
}

export function filterTree() {
  const query = $("search").value.trim().toLowerCase();
  let shown = 0;
  for (const details of $("tree").querySelectorAll("details")) {
    let matches = 0, holdsChosen = false;
    for (const button of details.querySelectorAll(".tensor")) {
      const hit = !query || button.dataset.name.toLowerCase().includes(query);
      button.hidden = !hit;
      matches += hit;
      holdsChosen ||= button.dataset.name === state.tensor;
    }
    details.hidden = matches === 0;
    details.open = query ? matches > 0 : holdsChosen;
    shown += matches;
  }
  $("search-note").textContent = query ? `${shown} match${shown === 1 ? "" : "es"}` : "";
}

// The views that fit the chosen tensor (the server's registry, best first), then the
// probe inputs' activations and maps where they were recorded.
export function renderViewChoices(tensor) {
  const select = $("view");
  select.replaceChildren();
  for (const view of tensor ? tensor.views : []) {
    const option = el("option", view);
    option.value = view;
    select.append(option);
  }
  for (const layer of state.info.layers) {
    const view = { activation: "activations", attribution: "attributions" }[layer.name];
    if (!view) continue;
    for (const probe of layer.tensors) {
      const option = el("option", `${view}: ${probe.name}`);
      option.value = `${view}\n${probe.name}`;
      select.append(option);
    }
  }
  if (select.options.length) select.selectedIndex = 0; // the best view of this tensor
}
