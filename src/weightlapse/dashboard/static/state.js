// The page's one state: which run and tensor, the step index, playback and the frame cache.
export const state = {
  run: null, opening: null, compare: "", info: null, tensor: null, index: 0, playing: false,
  frames: new Map(), limit: 1, statsSteps: [], drawn: 0, lastStep: null, timer: null,
};
window.__wl = state; // read by the end-to-end tests and the benchmark

export function currentStep() {
  return state.info ? state.info.steps[state.index] : 0;
}
