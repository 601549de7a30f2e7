// weightlapse dashboard: one step slider for the page, playback like a film, live follow.
// Names from runs are always set as text, never as HTML.

const $ = (id) => document.getElementById(id);
const state = {
  run: null, compare: "", info: null, tensor: null, index: 0, playing: false,
  frames: new Map(), limit: 1, statsSteps: [], drawn: 0, lastStep: null, timer: null,
};
window.__wl = state; // read by the end-to-end tests and the benchmark

const enc = encodeURIComponent;
let plotlyStarted = false;
let plotlyLoaded;
const plotlyReady = new Promise((resolve) => { plotlyLoaded = resolve; });
function loadPlotly() {
  if (plotlyStarted) return;
  plotlyStarted = true;
  const script = document.createElement("script");
  script.src = "/vendor/plotly.min.js";
  script.onload = plotlyLoaded;
  document.head.append(script);
}
const runPath = (name) => name.split("/").map(enc).join("/");

async function getJSON(url) {
  const response = await fetch(url, { cache: "no-store" });
  if (!response.ok) throw new Error((await response.json()).error || response.statusText);
  return response.json();
}

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (cls) node.className = cls;
  return node;
}

// ---- runs -------------------------------------------------------------------------
async function loadRuns() {
  const runs = await getJSON("/api/runs");
  const list = $("runs");
  const known = [...list.querySelectorAll("button")].map((b) => b.dataset.name);
  if (known.join("\n") === runs.map((r) => r.name).join("\n")) return;
  list.replaceChildren();
  const compare = $("compare");
  const chosen = compare.value;
  compare.replaceChildren(el("option", "(none)"));
  compare.firstChild.value = "";
  for (const run of runs) {
    const button = el("button", `${run.name}${run.live ? " ●" : ""}`);
    button.dataset.name = run.name;
    button.title = `${run.steps} steps, ${run.framework}`;
    button.onclick = () => selectRun(run.name);
    if (run.name === state.run) button.classList.add("active");
    const item = el("li");
    item.append(button);
    list.append(item);
    const option = el("option", run.name);
    option.value = run.name;
    compare.append(option);
  }
  compare.value = chosen;
  if (!state.run && runs.length) selectRun(runs[0].name);
}

async function selectRun(name) {
  state.run = name;
  state.frames.clear();
  for (const b of $("runs").querySelectorAll("button")) {
    b.classList.toggle("active", b.dataset.name === name);
  }
  state.info = await getJSON(`/api/run/info/${runPath(name)}`);
  renderTree();
  renderViewChoices();
  setSlider(state.info.steps.length - 1);
  drawScalars();
  const first = state.info.layers.flatMap((l) => l.tensors)
    .find((t) => t.kinds.includes("param") && t.snapshots.length);
  if (first) await selectTensor(first.name);
}

function renderTree() {
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
      button.onclick = () => selectTensor(tensor.name);
      details.append(button);
    }
    tree.append(details);
  }
}

// Views of a tensor, then the probe inputs' activations and maps where they were recorded.
const TENSOR_VIEWS = ["weights", "filters", "heatmap", "trajectories", "histograms", "stats",
  "ridgeline", "overview"];

function renderViewChoices() {
  const select = $("view");
  const chosen = select.value;
  select.replaceChildren();
  for (const view of TENSOR_VIEWS) {
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

// ---- one tensor -------------------------------------------------------------------
async function selectTensor(name) {
  state.tensor = name;
  state.frames.clear();
  for (const b of $("tree").querySelectorAll(".tensor")) {
    b.classList.toggle("active", b.dataset.name === name);
  }
  $("frame-title").textContent = name;
  const q = `?tensor=${enc(name)}&kind=param`;
  const histogram = getJSON(`/api/run/histograms/${runPath(state.run)}${q}`);
  fetchFrame(state.run, name, currentStep());  // on its way while the statistics come
  const stats = await getJSON(`/api/run/stats/${runPath(state.run)}${q}`);
  // One colour scale for every step, symmetric around zero: change stays visible.
  const extremes = stats.stats.min.concat(stats.stats.max).filter((v) => v !== null);
  state.limit = Math.max(1e-12, ...extremes.map(Math.abs));
  state.statsSteps = stats.steps;
  const lines = ["l2", "mean_abs", "std"].map((s) => ({
    x: stats.steps, y: stats.stats[s], name: s, mode: "lines",
  }));
  await drawStep();  // the picture first; the charts after it
  loadPlotly();
  await plotlyReady;
  Plotly.react("stats", lines, plotLayout("step", "value"));
  const hist = await histogram;
  Plotly.react("hist", [{
    x: hist.steps, y: hist.values, z: transpose(hist.counts), type: "heatmap",
    colorscale: "Viridis", zsmooth: false,
  }], plotLayout("step", "value"));
  moveCursors(currentStep());
}

function transpose(rows) {
  return rows; // the server sends value rows (bins) by step columns already
}

function plotLayout(x, y, extra = {}) {
  return {
    margin: { l: 50, r: 20, t: 10, b: 40 }, xaxis: { title: { text: x } },
    yaxis: { title: { text: y } }, showlegend: true, ...extra,
  };
}

async function drawScalars() {
  const data = await getJSON(`/api/run/scalars/${runPath(state.run)}`);
  await plotlyReady;
  const traces = Object.entries(data.series).map(([name, values]) => ({
    x: data.steps, y: values, name, mode: "lines", connectgaps: true,
  }));
  Plotly.react("scalars", traces, plotLayout("step", ""));
}

// ---- frames -----------------------------------------------------------------------
async function fetchFrame(run, tensor, step) {
  const key = `${run}\n${tensor}\n${step}`;
  if (!state.frames.has(key)) {
    state.frames.set(key, (async () => {
      const url = `/api/run/frame/${runPath(run)}?tensor=${enc(tensor)}&step=${step}`;
      const response = await fetch(url);
      if (!response.ok) return null;
      const [rows, cols] = response.headers.get("X-Shape").split(",").map(Number);
      const data = new Float32Array(await response.arrayBuffer());
      return { data, rows, cols, step: Number(response.headers.get("X-Step")),
               sum: data.reduce((a, b) => a + b, 0) };
    })());
  }
  return state.frames.get(key);
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

function heatmap(canvasId, frame, title) {
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

function currentStep() {
  return state.info ? state.info.steps[state.index] : 0;
}

async function drawStep() {
  if (!state.info) return;
  const step = currentStep();
  const epoch = state.info.epochs[state.index];
  $("step-label").textContent = `step ${step}${epoch >= 0 ? ` · epoch ${epoch}` : ""}` +
    ` (${state.index + 1}/${state.info.steps.length})`;
  // While playing, the charts' cursors wait for the stop: relayout costs more than a frame.
  if (!state.playing) moveCursors(step);
  if (!state.tensor) return;
  const frame = await fetchFrame(state.run, state.tensor, step);
  if (frame && currentStep() === step) {
    heatmap("frame-canvas", frame, `${state.run} · snapshot at step ${frame.step}`);
    state.drawn += 1;
    state.lastStep = frame.step;
    state.lastSum = frame.sum;
  }
  if (state.compare) {
    $("compare-box").hidden = false;
    const other = await fetchFrame(state.compare, state.tensor, step);
    $("compare-title").textContent = `${state.compare}: ${state.tensor}`;
    if (other) {
      heatmap("frame-b-canvas", other, `${state.compare} · snapshot at step ${other.step}`);
      state.drawnB = (state.drawnB || 0) + 1;
    }
  } else {
    $("compare-box").hidden = true;
  }
  if (!state.playing) drawView();
}

function moveCursors(step) {
  if (!window.Plotly) return;
  const cursor = { shapes: [{ type: "line", x0: step, x1: step, yref: "paper", y0: 0, y1: 1,
    line: { color: "black", width: 1 } }] };
  for (const id of ["scalars", "stats", "hist"]) {
    if ($(id).data) Plotly.relayout(id, cursor);
  }
}

function drawView() {
  const [view, probe] = $("view").value.split("\n");
  const q = new URLSearchParams({ tensor: probe || state.tensor || "",
                                  step: String(currentStep()) });
  const img = $("view-img");
  img.onerror = () => { $("view-error").textContent = `no ${view} view for this tensor`; };
  img.onload = () => { $("view-error").textContent = ""; };
  img.src = `/api/run/view/${enc(view)}/${runPath(state.run)}?${q}`;
}

function setSlider(index) {
  const slider = $("slider");
  slider.max = String(Math.max(0, state.info.steps.length - 1));
  state.index = Math.max(0, Math.min(index, state.info.steps.length - 1));
  slider.value = String(state.index);
}

// ---- time -------------------------------------------------------------------------
function snapshotIndices() {
  const tensor = state.info.layers.flatMap((l) => l.tensors).find((t) => t.name === state.tensor);
  const snaps = new Set(tensor ? tensor.snapshots : []);
  return state.info.steps.map((s, i) => (snaps.has(s) ? i : -1)).filter((i) => i >= 0);
}

function play() {
  if (state.playing) return stop();
  state.playing = true;
  $("play").textContent = "❚❚";
  const frames = snapshotIndices();
  let k = frames.findIndex((i) => i > state.index);
  if (k < 0) k = 0;
  const tick = async () => {
    if (!state.playing) return;
    const began = performance.now();
    if (k >= frames.length) return stop();
    for (let j = k + 1; j < Math.min(frames.length, k + 12); j++) {  // prefetch ahead
      fetchFrame(state.run, state.tensor, state.info.steps[frames[j]]);
    }
    setSlider(frames[k]);
    k += 1;
    await drawStep();
    state.timer = setTimeout(tick, Math.max(0, 1000 / 30 - (performance.now() - began)));
  };
  tick();
}

function stop() {
  state.playing = false;
  clearTimeout(state.timer);
  $("play").textContent = "▶";
  moveCursors(currentStep());
  drawView();
}

async function followLive() {
  try {
    await loadRuns();
    if (!state.run) return;
    const info = await getJSON(`/api/run/info/${runPath(state.run)}`);
    if (info.steps.length === state.info.steps.length) return;
    const atEnd = state.index === state.info.steps.length - 1;
    state.info = info;
    setSlider(atEnd && $("follow").checked ? info.steps.length - 1 : state.index);
    drawScalars();
    if (state.tensor && !state.playing) {
      const tensor = state.tensor;
      state.frames.clear();
      await selectTensor(tensor);
    }
  } catch (error) {
    console.warn(error);
  }
}

$("slider").addEventListener("input", () => {
  state.index = Number($("slider").value);
  drawStep();
});
$("play").addEventListener("click", play);
$("view").addEventListener("change", drawView);
$("compare").addEventListener("change", () => {
  state.compare = $("compare").value;
  drawStep();
});
loadRuns();
setTimeout(loadPlotly, 1500);  // charts come anyway, also for a folder with no run yet
setInterval(followLive, 1000);
