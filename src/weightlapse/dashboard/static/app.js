// weightlapse dashboard: one step slider for the page, playback like a film, live follow.
// Modules: state.js (what is chosen), api.js (the server), render.js (drawing).
import * as api from "./api.js";
import {
  $, drawFrame, el, filterTree, loadPlotly, moveCursors, plotLayout, plotlyReady, renderTree,
  renderViewChoices,
} from "./render.js";
import { currentStep, showing, state } from "./state.js";

// ---- runs -------------------------------------------------------------------------
// The runs list: from /api/runs at start, then from each server-sent change.
async function loadRuns(listed) {
  const runs = listed || await api.runs();
  const signature = runs.map((r) => `${r.name}\n${r.steps}\n${r.live}`).join("\n");
  if (signature === state.runsSignature) return;
  state.runsSignature = signature;
  const list = $("runs");
  list.replaceChildren();
  const compare = $("compare");
  const chosen = compare.value;
  compare.replaceChildren(el("option", "(none)"));
  compare.firstChild.value = "";
  for (const run of runs) {
    const button = el("button", `${run.name}${run.live ? " ●" : ""}`);
    button.dataset.name = run.name;
    button.title = `${run.name}: ${run.steps} steps${run.live ? ", live" : ""}`;
    button.onclick = () => selectRun(run.name);
    if (run.name === (state.opening || state.run)) button.classList.add("active");
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

// A damaged run (or any server error) is said in one line above the views.
function showError(error) {
  $("run-error").textContent = error ? String(error.message || error) : "";
}

async function selectRun(name) {
  try {
    await openRun(name);
    showError(null);
  } catch (error) {
    showError(error);
  }
}

function markActive(name) {
  for (const b of $("runs").querySelectorAll("button")) {
    b.classList.toggle("active", b.dataset.name === name);
  }
}

// The run's name and its info change together: while a run's info is on its way the
// page still shows the run before it, whole, and an answer for a run picked before the
// last one is dropped (a name with another run's steps drew a wrong step).
async function openRun(name) {
  state.opening = name;
  markActive(name);
  let info;
  try {
    info = await api.info(name);
  } catch (error) {
    if (state.opening === name) {
      state.opening = null;
      markActive(state.run); // a damaged run's error shows; the open run stays
    }
    throw error;
  }
  if (state.opening !== name) return;
  state.opening = null;
  state.run = name;
  state.info = info;
  state.frames.clear();
  state.tensor = null;
  renderTree((tensor) => selectTensor(tensor).then(() => showError(null), showError));
  renderViewChoices(null);
  setSlider(state.info.steps.length - 1);
  listen(name);
  drawScalars();
  await selectFirstTensor();
}

// The first weight with snapshots (a run opened before its first commit has none yet:
// following it live picks one as soon as there is one).
async function selectFirstTensor() {
  const first = state.info.layers.flatMap((l) => l.tensors)
    .find((t) => t.kinds.includes("param") && t.snapshots.length);
  if (first) await selectTensor(first.name);
}

// ---- one tensor -------------------------------------------------------------------
function tensorEntry(name, info = state.info) {
  return info ? info.layers.flatMap((l) => l.tensors).find((t) => t.name === name) : null;
}

async function selectTensor(name, keepView = false) {
  const chosenView = $("view").value;
  state.tensor = name;
  state.frames.clear();
  for (const b of $("tree").querySelectorAll(".tensor")) {
    b.classList.toggle("active", b.dataset.name === name);
  }
  filterTree();
  $("frame-title").textContent = name;
  const entry = tensorEntry(name);
  renderViewChoices(entry);
  if (keepView && [...$("view").options].some((o) => o.value === chosenView)) {
    $("view").value = chosenView;
  }
  const run = state.run;
  // Statistics of a tensor no longer shown would set the colour scale of another's picture.
  const stale = () => !showing(run, name);
  const histogram = api.histograms(run, name);
  if (entry && entry.snapshots.length) {
    api.fetchFrame(run, name, currentStep()); // on its way while the statistics come
  }
  const stats = await api.stats(run, name);
  if (stale()) return;
  // One colour scale for every step, symmetric around zero: change stays visible.
  const extremes = stats.stats.min.concat(stats.stats.max).filter((v) => v !== null);
  state.limit = Math.max(1e-12, ...extremes.map(Math.abs));
  state.statsSteps = stats.steps;
  const lines = ["l2", "mean_abs", "std"].map((s) => ({
    x: stats.steps, y: stats.stats[s], name: s, mode: "lines",
  }));
  await drawStep(); // the picture first; the charts after it
  loadPlotly();
  await plotlyReady;
  if (stale()) return;
  Plotly.react("stats", lines, plotLayout("step", "value"));
  const hist = await histogram;
  if (stale()) return;
  // The server sends value rows (bins) by step columns: Plotly's z as it is.
  Plotly.react("hist", [{
    x: hist.steps, y: hist.values, z: hist.counts, type: "heatmap",
    colorscale: "Viridis", zsmooth: false,
  }], plotLayout("step", "value"));
  moveCursors(currentStep());
}

async function drawScalars() {
  const run = state.run;
  const data = await api.scalars(run);
  await plotlyReady;
  if (state.run !== run) return; // another run's curves came late
  const traces = Object.entries(data.series).map(([name, values]) => ({
    x: data.steps, y: values, name, mode: "lines", connectgaps: true,
  }));
  Plotly.react("scalars", traces, plotLayout("step", ""));
}

// A frame that comes after the step, the tensor or the run changed is dropped: drawn, it
// would be one step's (or tensor's) picture under another's label.
async function drawStep() {
  if (!state.info) return;
  const { run, tensor, compare, compareInfo } = state;
  const step = currentStep();
  const shown = () => showing(run, tensor) && currentStep() === step;
  const epoch = state.info.epochs[state.index];
  $("step-label").textContent = `step ${step}${epoch >= 0 ? ` · epoch ${epoch}` : ""}` +
    ` (${state.index + 1}/${state.info.steps.length})`;
  // While playing, the charts' cursors wait for the stop: relayout costs more than a frame.
  if (!state.playing) moveCursors(step);
  if (!tensor) return;
  const entry = tensorEntry(tensor);
  const frame = entry && entry.snapshots.length ? await api.fetchFrame(run, tensor, step) : null;
  if (!shown()) return;
  if (frame) {
    drawFrame("frame-canvas", frame, `${run} · snapshot at step ${frame.step}`);
    state.drawn += 1;
    state.lastStep = frame.step;
    state.lastSum = frame.sum;
  } else {
    $("frame-note").textContent = `${tensor}: no snapshot to draw (statistics only)`;
  }
  const other = compare && tensorEntry(tensor, compareInfo);
  $("compare-box").hidden = !compare;
  if (compare) {
    $("compare-title").textContent = `${compare}: ${tensor}`;
    const shot = other && other.snapshots.length
      ? await api.fetchFrame(compare, tensor, step) : null;
    if (!shown() || state.compare !== compare) return;
    if (shot) {
      drawFrame("frame-b-canvas", shot, `${compare} · snapshot at step ${shot.step}`);
      state.drawnB += 1;
      state.lastStepB = shot.step;
    } else {
      $("frame-b-note").textContent = `${compare} has no snapshot of ${tensor}`;
    }
  }
  if (!state.playing) drawView();
}

function drawView() {
  if (!$("view").value) return;
  const [view, probe] = $("view").value.split("\n");
  const img = $("view-img");
  img.onerror = () => { $("view-error").textContent = `no ${view} view for this tensor`; };
  img.onload = () => { $("view-error").textContent = ""; };
  img.src = api.viewURL(state.run, view, probe || state.tensor || "", currentStep());
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
    for (let j = k + 1; j < Math.min(frames.length, k + 12); j++) { // prefetch ahead
      api.fetchFrame(state.run, state.tensor, state.info.steps[frames[j]]);
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

// Server-sent events say when the runs or the open run's steps change: no polling.
let source = null;
function listen(run) {
  if (source) source.close();
  source = api.events(run);
  source.addEventListener("change", (event) => {
    const change = JSON.parse(event.data);
    state.events = (state.events || 0) + 1;
    loadRuns(change.runs).catch(showError);
    if (change.run === state.run && state.info && change.steps !== state.info.steps.length) {
      followLive();
    }
  });
}

async function followLive() {
  try {
    const run = state.run;
    const info = await api.info(run);
    if (run !== state.run || info.steps.length === state.info.steps.length) return;
    // at the last step (or at none yet: a run opened before its first step follows too)
    const atEnd = state.index >= state.info.steps.length - 1;
    const tensorsBefore = state.info.layers.flatMap((l) => l.tensors).length;
    state.info = info;
    if (info.layers.flatMap((l) => l.tensors).length !== tensorsBefore) {
      renderTree((tensor) => selectTensor(tensor).then(() => showError(null), showError));
    }
    setSlider(atEnd && $("follow").checked ? info.steps.length - 1 : state.index);
    drawScalars();
    if (state.tensor && !state.playing) {
      state.frames.clear();
      await selectTensor(state.tensor, true);
    } else if (!state.tensor) {
      await selectFirstTensor();
    }
  } catch (error) {
    showError(error);
  }
}

$("slider").addEventListener("input", () => {
  state.index = Number($("slider").value);
  drawStep();
});
$("play").addEventListener("click", play);
$("view").addEventListener("change", drawView);
$("compare").addEventListener("change", async () => {
  const name = $("compare").value; // the compared run and its info change together
  state.comparing = name;
  const info = name ? await api.info(name).catch(() => null) : null;
  if (state.comparing !== name) return;
  state.compare = name;
  state.compareInfo = info;
  drawStep();
});
$("search").addEventListener("input", filterTree);
loadRuns().then(() => { if (!state.run) listen(null); }, showError);
setTimeout(loadPlotly, 1500); // charts come anyway, also for a folder with no run yet
