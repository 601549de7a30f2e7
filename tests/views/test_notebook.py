"""A notebook executed as a user would (nbconvert's executor, a real ipykernel, the inline
matplotlib backend Jupyter uses): views show once, runs and histories as tables, and the widget
draws the best view of a tensor and follows a run written in the same kernel."""

from __future__ import annotations

import json

import pytest

nbformat = pytest.importorskip("nbformat")
preprocessors = pytest.importorskip("nbconvert.preprocessors")
pytest.importorskip("anywidget")
pytest.importorskip("ipykernel")

pytestmark = pytest.mark.slow

SETUP = """
import numpy as np, weightlapse
rng = np.random.default_rng(0)
with weightlapse.create(RUN, snapshots=1) as writer:
    writer.set_meta(input_shape=[1, 4, 4], channels="first")
    writer.describe("conv.weight", layout="out,in,h,w", layer="conv")
    writer.describe("fc.weight", layout="out,in", layer="fc")
    for step in range(4):
        writer.log(step, {"conv.weight": rng.normal(size=(3, 1, 2, 2)),
                          "fc.weight": rng.normal(size=(2, 16)),
                          "fc.bias": np.zeros(2) + step}, loss=1.0 / (step + 1))
run = weightlapse.open(RUN)
"""

CELLS = {
    "run": "run",
    "stats": 'run["fc.weight"].stats',
    "figure": 'weightlapse.heatmap(run, "fc.weight")',
    "ax": "import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\n"
    'weightlapse.trajectories(run, "fc.weight", ax=ax)',
    "widget": 'w = weightlapse.widget(run, "conv.weight")\nw',
    "widget_state": "print(json.dumps({'views': w.views, 'view': w.view, 'steps': w.steps,\n"
    "    'image': len(w.image), 'error': w.error}))",
    "widget_dense": "first = w.image\nw.tensor = 'fc.weight'\nw.step = 0\n"
    "print(json.dumps({'view': w.view, 'step': w.step, 'changed': w.image != first}))",
    "live": """
import time
writer = weightlapse.create(RUN + "-live", snapshots=1, flush_seconds=0.2)
writer.log(0, {"w": np.zeros((2, 2))})
writer.flush()
live = weightlapse.widget(writer, poll_seconds=0.1)
for step in range(1, 6):
    writer.log(step, {"w": np.full((2, 2), float(step))})
writer.flush()
deadline = time.monotonic() + 30
while live.steps[-1:] != [5] and time.monotonic() < deadline:
    time.sleep(0.05)
seen_live = live.live
writer.close()
while live.live and time.monotonic() < deadline:
    time.sleep(0.05)
print(json.dumps({'steps': live.steps, 'step': live.step, 'was_live': seen_live,
                  'live_after_close': live.live}))
""",
}


def outputs_of(notebook, tag):
    cell = next(c for c in notebook.cells if c.metadata.get("tags") == [tag])
    return cell.outputs


def mime_count(outputs, mime):
    return sum(mime in o.get("data", {}) for o in outputs)


def printed(outputs):
    return json.loads("".join(o.text for o in outputs if o.output_type == "stream"))


@pytest.fixture(scope="module")
def notebook(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nb")
    cells = [nbformat.v4.new_code_cell(f"import json\nRUN = {str(folder / 'run')!r}\n" + SETUP)]
    for tag, source in CELLS.items():
        cells.append(nbformat.v4.new_code_cell(source, metadata={"tags": [tag]}))
    nb = nbformat.v4.new_notebook(cells=cells)
    mp = pytest.MonkeyPatch()
    mp.delenv("MPLBACKEND", raising=False)  # the kernel picks Jupyter's inline backend
    try:
        executor = preprocessors.ExecutePreprocessor(timeout=120, kernel_name="python3")
        executor.preprocess(nb, {"metadata": {"path": str(folder)}})
    finally:
        mp.undo()
    return nb


def test_a_run_and_its_statistics_show_as_tables(notebook):
    run = outputs_of(notebook, "run")
    assert mime_count(run, "text/html") == 1
    html = run[0]["data"]["text/html"]
    assert "conv.weight" in html and "fc.bias" in html and "<table>" in html
    stats = outputs_of(notebook, "stats")[0]["data"]["text/html"]
    assert "l2" in stats and "over 4 steps" in stats


def test_a_view_shows_once_as_an_image(notebook):
    outputs = outputs_of(notebook, "figure")
    assert mime_count(outputs, "image/png") == 1
    assert not any(
        "<Figure" in o.get("data", {}).get("text/plain", "")
        for o in outputs
        if "image/png" not in o.get("data", {})
    )


def test_a_view_drawn_into_a_pyplot_axes_shows_once(notebook):
    outputs = outputs_of(notebook, "ax")
    assert mime_count(outputs, "image/png") == 1


def test_the_widget_shows_the_best_view_and_moves_with_the_slider(notebook):
    shown = outputs_of(notebook, "widget")
    assert mime_count(shown, "application/vnd.jupyter.widget-view+json") == 1
    state = printed(outputs_of(notebook, "widget_state"))
    assert state["view"] == "filters" and state["views"][0] == "filters"
    assert "weights" not in state["views"] and state["steps"] == [0, 1, 2, 3]
    assert state["image"] > 1000 and state["error"] == ""
    dense = printed(outputs_of(notebook, "widget_dense"))
    assert dense == {"view": "weights", "step": 0, "changed": True}  # 16 inputs = a 4x4 image


def test_the_widget_follows_a_run_written_in_the_same_kernel(notebook):
    live = printed(outputs_of(notebook, "live"))
    assert live["steps"] == [0, 1, 2, 3, 4, 5] and live["step"] == 5
    assert live["was_live"] and not live["live_after_close"]
