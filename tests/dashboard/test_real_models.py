"""The dashboard on real models in headless Chromium: a tiny BERT (105 tensors in 40-odd
layers) and the CNN demo. The tree is searchable and collapsed, names are whole on hover,
the main canvas draws each tensor's semantic view from the frame bytes, the view menu
offers only what fits, new steps come by server-sent events, and the console stays clean."""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest

from tests.conftest import tiny_bert_config
from tests.dashboard.serving import browser_page, serving

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
playwright = pytest.importorskip("playwright.sync_api")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not shutil.which("chromium"), reason="needs Debian's chromium"),
]


def record_bert(path):
    import weightlapse.torch

    torch.manual_seed(0)
    config = tiny_bert_config()
    model = transformers.BertForSequenceClassification(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    recorder = weightlapse.torch.watch(model, path, optimizer, snapshots=1)
    for _ in range(4):
        ids = torch.randint(0, 64, (8, 12))
        loss = model(input_ids=ids, labels=torch.randint(0, 2, (8,))).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    recorder.close()
    return len(list(model.named_parameters()))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from weightlapse.demos.cnn import run_cnn

    root = tmp_path_factory.mktemp("runs")
    n_bert = record_bert(root / "bert")
    demo = run_cnn("torch", tmp_path_factory.mktemp("gallery"), epochs=1)
    shutil.copytree(demo.run_path, root / "cnn")
    return root, n_bert


@pytest.fixture(scope="module")
def server(runs):
    with serving(runs[0]) as url:
        yield url


@pytest.fixture
def page():
    with browser_page() as tab:
        tab.problems = []
        tab.api_requests = []
        tab.on("console", lambda m: m.type == "error" and tab.problems.append(m.text))
        tab.on("pageerror", lambda e: tab.problems.append(str(e)))
        tab.on("response", lambda r: r.status >= 400 and tab.problems.append(f"{r.status} {r.url}"))
        tab.on("request", lambda r: "/api/" in r.url and tab.api_requests.append(r.url))
        yield tab


def open_run(page, url, name):
    page.goto(url)
    page.wait_for_function("() => window.__wl && window.__wl.drawn > 0", timeout=20000)
    page.locator(f"#runs button[data-name='{name}']").click()
    page.wait_for_function(
        f"() => window.__wl.run === '{name}' && window.__wl.tensor", timeout=20000
    )


def test_a_bert_tree_is_collapsed_searchable_and_whole_on_hover(server, runs, page):
    _, n_bert = runs
    open_run(page, server, "bert")
    groups = page.locator("#tree details")
    assert groups.count() > 20 and page.locator(".tensor").count() == n_bert
    assert page.locator("#tree details[open]").count() == 1  # the chosen tensor's group
    assert page.evaluate("() => document.getElementById('tree').scrollHeight") < 1400
    page.fill("#search", "query")
    visible = page.locator(".tensor:visible")
    assert visible.count() == 4  # weight and bias of 2 layers
    titles = [visible.nth(i).get_attribute("title") for i in range(4)]
    assert {t.split(" ")[0] for t in titles} == {
        f"bert.encoder.layer.{i}.attention.self.query.{w}"
        for i in (0, 1)
        for w in ("weight", "bias")
    }
    for i in range(4):  # each under its layer's heading, by the rest of its name
        button = visible.nth(i)
        layer = button.evaluate("b => b.parentElement.dataset.layer")
        short = button.evaluate("b => b.firstChild.textContent")
        assert f"{layer}.{short}" == button.get_attribute("title").split(" ")[0]
        assert short in ("weight", "bias") and layer.endswith("attention.self.query")
    assert "4 matches" in page.locator("#search-note").text_content()
    page.fill("#search", "")
    assert page.locator("#tree details[open]").count() == 1
    assert page.problems == []


def test_the_view_menu_offers_what_fits_and_the_canvas_draws_the_matrix(server, page):
    open_run(page, server, "bert")
    page.fill("#search", "query.bias")
    page.locator(".tensor:visible").first.click()
    page.wait_for_function("() => window.__wl.tensor.endsWith('query.bias')")
    options = page.locator("#view option").all_text_contents()
    assert options[0] == "heatmap" and "filters" not in options and "weights" not in options
    page.wait_for_function("() => document.getElementById('view-img').complete")
    page.wait_for_function("() => document.getElementById('view-img').naturalWidth > 0")
    assert page.problems == []


def test_a_conv_kernel_is_drawn_as_its_filter_grid_on_the_canvas(server, page):
    import httpx

    open_run(page, server, "cnn")
    info = httpx.get(server + "api/run/info/cnn").json()
    conv = next(t for layer in info["layers"] for t in layer["tensors"] if len(t["shape"]) == 4)
    assert conv["views"][0] == "filters"
    page.locator(f".tensor[data-name='{conv['name']}']").click()
    page.wait_for_function(f"() => window.__wl.tensor === '{conv['name']}'")
    page.wait_for_function(
        "() => document.getElementById('frame-note').textContent.includes('filters')", timeout=10000
    )
    frame = httpx.get(server + "api/run/frame/cnn", params={"tensor": conv["name"]})
    rows, cols = (int(v) for v in frame.headers["X-Shape"].split(",")[:2])
    n = rows * cols
    gaps = np.frombuffer(frame.content[4 * n :], dtype=np.uint8).reshape(rows, cols)
    canvas = page.evaluate("""() => { const c = document.getElementById('frame-canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        return {w: c.width, h: c.height, px: Array.from(d)}; }""")
    assert (canvas["h"], canvas["w"]) == (rows, cols)
    pixels = np.array(canvas["px"], dtype=np.uint8).reshape(rows, cols, 4)[..., :3]
    assert (pixels[gaps == 1] == (110, 110, 110)).all()  # the grid's gaps in their grey
    assert len({tuple(p) for p in pixels[gaps == 0]}) > 10  # weights in many colours
    assert page.locator("#view option").first.text_content() == "filters"
    assert page.problems == []


def test_new_steps_arrive_by_events_not_polling(server, runs, page):
    import weightlapse

    root, _ = runs
    with weightlapse.create(root / "live", snapshots=1, flush_seconds=0.1) as writer:
        writer.log(0, {"w": np.zeros((3, 3))})
        writer.flush()
        open_run(page, server, "live")
        before = len(page.api_requests)
        time.sleep(2.0)
        assert len(page.api_requests) == before  # an idle page asks nothing
        for step in range(1, 4):
            writer.log(step, {"w": np.full((3, 3), float(step))})
        writer.flush()
        page.wait_for_function("() => window.__wl.info.steps.length === 4", timeout=15000)
        page.wait_for_function("() => window.__wl.lastStep === 3", timeout=15000)
    assert page.problems == []
