// The page's one state: which run and tensor, the step index, playback and the frame cache.
export const state = {
  run: null, opening: null, compare: "", comparing: "", compareInfo: null, info: null,
  tensor: null, index: 0, playing: false, frames: new Map(), limit: 1, statsSteps: [],
  drawn: 0, lastStep: null, drawnB: 0, lastStepB: null, timer: null,
};
window.__wl = state; // read by the end-to-end tests and the benchmark

export function currentStep() {
  return state.info ? state.info.steps[state.index] : 0;
}

// Whether an answer asked for `run` and `tensor` is still for what the page shows: one
// that comes after another was picked is dropped, never drawn under the other's name.
export function showing(run, tensor) {
  return state.run === run && state.tensor === tensor;
}
