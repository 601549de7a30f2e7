"""The dashboard in a real headless Chromium: pick a run and a tensor, move the slider and
see the picture change, play, and see new steps arrive while a recorder writes."""

import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import weightlapse
from tests.dashboard.serving import browser_page, serving

pytestmark = pytest.mark.skipif(
    not shutil.which("chromium"), reason="needs Debian's chromium (apt-get install chromium)"
)
playwright = pytest.importorskip("playwright.sync_api")

LIVE_WRITER = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    import weightlapse
    rng = np.random.default_rng(1)
    with weightlapse.create(sys.argv[1], snapshots=1, flush_seconds=0.2) as run:
        while not os.path.exists(sys.argv[2]):  # the page opens the run before any step
            time.sleep(0.05)
        for step in range(400):
            run.log(step, {"fc/kernel": rng.normal(size=(16, 8))}, loss=1.0 / (step + 1))
            time.sleep(0.05)
""")


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "runs"
    rng = np.random.default_rng(0)
    with weightlapse.create(root / "mnist", snapshots=1) as run:
        w = rng.normal(0, 0.1, size=(64, 10))
        for step in range(30):
            w = w + rng.normal(0, 0.05, size=w.shape) * (np.arange(64)[:, None] < 32)
            run.log(
                step,
                {"dense/kernel": w, "dense/bias": w[0]},
                loss=1.0 / (step + 1),
                epoch=step // 10,
            )
    with serving(root) as url:
        yield url, root


@pytest.fixture
def page():
    with browser_page() as tab:
        yield tab


def wl(page, expression):
    return page.evaluate(f"() => window.__wl.{expression}")


def move_slider(page, index):
    page.evaluate(f"""() => {{ const s = document.getElementById('slider');
        s.value = '{index}'; s.dispatchEvent(new Event('input')); }}""")


def hold(page, match) -> list:
    """Requests matching `match` (a glob or a predicate of the URL) wait in the returned
    list until the test lets them go on: an answer made to come late."""
    held: list = []
    page.route(match, lambda route: held.append(route))  # a bound builtin will not do
    return held


def wait_until_held(page, held):
    while not held:
        page.wait_for_timeout(20)


def release_and_settle(page, held, url_part):
    """Lets a held request go on and gives the page's handler of its answer time to run."""
    with page.expect_response(lambda response: url_part in response.url):
        held[0].continue_()
    page.evaluate("() => new Promise((done) => setTimeout(done, 100))")


@pytest.mark.slow
def test_pick_a_run_and_a_tensor_move_the_slider_and_play(server, page):
    url, _ = server
    page.goto(url)
    page.wait_for_function("() => window.__wl && window.__wl.drawn > 0", timeout=15000)
    assert page.locator("#runs button").first.text_content().startswith("mnist")
    page.locator(".tensor[data-name='dense/kernel']").click()
    page.wait_for_function("() => window.__wl.tensor === 'dense/kernel'")
    assert wl(page, "lastStep") == 29  # the newest step first
    before = page.locator("#frame").screenshot()
    first_sum = wl(page, "lastSum")
    move_slider(page, 3)
    page.wait_for_function("() => window.__wl.lastStep === 3")
    assert "step 3 · epoch 0" in page.locator("#step-label").text_content()
    assert wl(page, "lastSum") != first_sum
    assert page.locator("#frame").screenshot() != before
    drawn = wl(page, "drawn")
    page.locator("#play").click()
    page.wait_for_function(f"() => window.__wl.drawn >= {drawn + 10}", timeout=15000)
    assert wl(page, "lastStep") > 3
    page.wait_for_function("() => !window.__wl.playing", timeout=15000)  # stops at the end
    assert wl(page, "lastStep") == 29


@pytest.mark.slow
def test_new_steps_and_new_runs_appear_while_a_recorder_writes(server, page):
    url, root = server
    page.goto(url)
    page.wait_for_function("() => window.__wl && window.__wl.drawn > 0", timeout=15000)
    go = root.parent / "go"
    writer = subprocess.Popen([sys.executable, "-c", LIVE_WRITER, str(root / "live"), str(go)])
    try:
        page.wait_for_selector("#runs button[data-name='live']", timeout=20000)
        page.locator("#runs button[data-name='live']").click()
        page.wait_for_function(
            "() => window.__wl.run === 'live' && window.__wl.info", timeout=10000
        )
        assert wl(page, "info.steps.length") == 0  # opened before its first step
        go.touch()
        # its first tensor is drawn as soon as the run has one, with no click
        page.wait_for_function("() => window.__wl.drawn > 1", timeout=20000)
        seen = wl(page, "info.steps.length")
        page.wait_for_function(f"() => window.__wl.info.steps.length > {seen + 5}", timeout=20000)
        # following live: the page moved to a newer step with no reload
        page.wait_for_function(f"() => window.__wl.lastStep >= {seen}", timeout=20000)
    finally:
        writer.kill()
        writer.wait()


def test_two_runs_side_by_side(server, page):
    url, root = server
    with weightlapse.create(root / "other", snapshots=1) as run:
        for step in range(30):
            run.log(
                step, {"dense/kernel": np.full((64, 10), 0.01 * step), "dense/bias": np.zeros(10)}
            )
    page.goto(url)
    page.wait_for_function("() => window.__wl && window.__wl.drawn > 0", timeout=15000)
    page.locator("#runs button[data-name='mnist']").click()
    page.wait_for_function("() => window.__wl.run === 'mnist' && window.__wl.tensor")
    page.select_option("#compare", "other")
    page.wait_for_selector("#compare-box:not([hidden])")
    page.wait_for_function("() => window.__wl.drawnB > 0", timeout=10000)
    assert "other" in page.locator("#compare-title").text_content()


def test_run_and_tensor_names_are_shown_as_text_never_as_html(server, page):
    url, root = server
    with weightlapse.create(root / "<img src=x onerror=alert(1)>", snapshots=1) as run:
        run.log(0, {"<b>w</b>": np.ones((2, 2))})
    page.goto(url)
    page.wait_for_selector("#runs button >> nth=1", timeout=15000)
    names = page.locator("#runs button").all_text_contents()
    assert any("<img src=x onerror=alert(1)>" in n for n in names)
    assert page.locator("#runs img").count() == 0
    page.locator("#runs button", has_text="onerror").click()
    page.wait_for_selector(".tensor", timeout=10000)
    assert page.locator(".tensor").first.get_attribute("title").startswith("<b>w</b>")
    assert page.locator("#tree b").count() == 0


def test_a_run_and_its_info_change_together(server, page):
    """While a picked run's info is on its way, the page is still the run before it,
    whole: never one run's name with another run's steps."""
    url, root = server
    with weightlapse.create(root / "other", snapshots=1) as run:
        for step in range(5):
            run.log(step, {"w": np.ones(4) * step})
    page.goto(url)
    page.wait_for_selector("#runs button[data-name='other']", timeout=15000)
    page.locator("#runs button[data-name='mnist']").click()
    page.wait_for_function("() => window.__wl.run === 'mnist' && window.__wl.tensor")
    held = hold(page, "**/api/run/info/other*")
    page.locator("#runs button[data-name='other']").click()
    wait_until_held(page, held)
    assert wl(page, "run") == "mnist" and wl(page, "info.steps.length") == 30
    held[0].continue_()
    page.wait_for_function("() => window.__wl.run === 'other'")
    assert wl(page, "info.steps.length") == 5


def test_statistics_that_come_late_never_scale_another_tensor(server, page):
    """A tensor's statistics set the colour scale of its pictures: when they come after
    another tensor was picked, they are dropped."""
    url, root = server
    run = weightlapse.open(root / "mnist")
    limits = {}
    for name in ("dense/kernel", "dense/bias"):
        stats = run[name].stats
        limits[name] = float(max(np.abs(stats["min"]).max(), np.abs(stats["max"]).max()))
    kernel_limit = limits["dense/kernel"]
    assert kernel_limit != limits["dense/bias"]  # else the test could not fail
    page.goto(url)
    page.wait_for_function("() => window.__wl.run === 'mnist' && window.__wl.tensor")
    page.locator(".tensor[data-name='dense/kernel']").click()
    page.wait_for_function(f"() => window.__wl.limit === {kernel_limit!r}")
    held = hold(page, "**/api/run/stats/mnist?tensor=dense%2Fbias*")
    page.locator(".tensor[data-name='dense/bias']").click()
    wait_until_held(page, held)
    page.locator(".tensor[data-name='dense/kernel']").click()
    page.wait_for_function("() => window.__wl.tensor === 'dense/kernel'")
    page.wait_for_function(f"() => window.__wl.limit === {kernel_limit!r}")
    release_and_settle(page, held, "dense%2Fbias")
    assert wl(page, "limit") == kernel_limit and wl(page, "tensor") == "dense/kernel"


def test_a_frame_that_comes_after_another_tensor_was_picked_is_not_drawn(server, page):
    """The bias's picture, late, must not land on the canvas under the kernel's name."""
    url, _ = server
    page.goto(url)
    page.wait_for_function("() => window.__wl.run === 'mnist' && window.__wl.tensor")
    page.locator(".tensor[data-name='dense/kernel']").click()
    page.wait_for_function("() => window.__wl.tensor === 'dense/kernel' && window.__wl.drawn")
    page.wait_for_function("() => window.__wl.lastStep === 29")
    kernel_sum = wl(page, "lastSum")
    held = hold(page, "**/api/run/frame/mnist?tensor=dense%2Fbias*")
    page.locator(".tensor[data-name='dense/bias']").click()
    wait_until_held(page, held)
    drawn = wl(page, "drawn")
    page.locator(".tensor[data-name='dense/kernel']").click()
    page.wait_for_function(f"() => window.__wl.drawn > {drawn}")
    assert wl(page, "lastSum") == kernel_sum
    drawn = wl(page, "drawn")
    release_and_settle(page, held, "dense%2Fbias")
    assert wl(page, "tensor") == "dense/kernel"
    assert wl(page, "drawn") == drawn and wl(page, "lastSum") == kernel_sum


def test_a_compared_frame_that_comes_after_the_step_moved_is_not_drawn(server, page):
    """Side by side, both pictures are of the step the slider is at."""
    url, root = server
    with weightlapse.create(root / "other", snapshots=1) as run:
        for step in range(30):
            run.log(step, {"dense/kernel": np.full((64, 10), 0.01 * step)})
    page.goto(url)
    page.wait_for_selector("#runs button[data-name='other']", timeout=15000)
    page.locator("#runs button[data-name='mnist']").click()
    page.wait_for_function("() => window.__wl.run === 'mnist' && window.__wl.tensor")
    page.locator(".tensor[data-name='dense/kernel']").click()
    page.wait_for_function("() => window.__wl.tensor === 'dense/kernel'")
    page.select_option("#compare", "other")
    page.wait_for_function("() => window.__wl.lastStepB === 29", timeout=10000)
    held = hold(page, lambda u: "/api/run/frame/other?" in u and u.endswith("&step=3"))
    move_slider(page, 3)
    wait_until_held(page, held)
    move_slider(page, 4)
    page.wait_for_function("() => window.__wl.lastStepB === 4 && window.__wl.lastStep === 4")
    release_and_settle(page, held, "other?tensor=dense%2Fkernel&step=3")
    assert wl(page, "lastStepB") == 4 and wl(page, "lastStep") == 4


def test_a_damaged_run_shows_its_one_line_error_in_the_page(server, page):
    url, root = server
    with weightlapse.create(root / "broken", snapshots=1) as run:
        for step in range(3):
            run.log(step, {"w": np.ones(4) * step})
    (root / "broken" / "index" / "c" / "0" / "0").unlink()  # the step numbers are gone
    page.goto(url)
    page.wait_for_selector("#runs button[data-name='broken']", timeout=15000)
    page.locator("#runs button", has_text="broken").click()
    page.wait_for_function("() => document.getElementById('run-error').textContent.length > 0")
    text = page.locator("#run-error").text_content()
    assert "damaged" in text and "index" in text and "weightlapse check" in text
    assert wl(page, "run") != "broken"  # the page keeps no half-open run
