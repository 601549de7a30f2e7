import subprocess
import sys

import numpy as np
from typer.testing import CliRunner

import weightlapse
from weightlapse.cli import app

runner = CliRunner()


def test_info_shows_tensors_steps_and_scalars(tmp_path):
    with weightlapse.create(tmp_path / "r") as run:
        for step in range(3):
            run.log(step, {"conv/kernel": np.ones((3, 3, 1, 4)) * step}, loss=1.0)
    result = runner.invoke(app, ["info", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert "3 recorded steps (0..2)" in result.output
    assert "conv/kernel" in result.output and "3x3x1x4" in result.output
    assert "loss" in result.output


def test_a_bad_path_is_one_clear_line_and_exit_code_2(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "weightlapse.cli", "info", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "No weightlapse run at" in proc.stderr and "Traceback" not in proc.stderr


def test_demo_neuron_prints_the_losses_and_writes_the_figure(tmp_path):
    result = runner.invoke(app, ["demo", "neuron", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "test loss before training" in result.output
    assert (tmp_path / "neuron-torch.png").stat().st_size > 10_000


def test_an_unknown_framework_is_refused_with_the_choices(tmp_path):
    result = runner.invoke(app, ["demo", "mnist", "--framework", "caffe", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "choose one of torch, keras" in result.output


def small_run(path):
    rng = np.random.default_rng(0)
    with weightlapse.create(path, snapshots=1) as run:
        for step in range(4):
            run.log(
                step,
                {
                    "conv/kernel": rng.normal(size=(3, 3, 1, 4)),
                    "dense/kernel": rng.normal(size=(16, 3)),
                },
                loss=1.0 / (step + 1),
            )


def test_plot_writes_the_view_to_png_svg_or_pdf(tmp_path):
    small_run(tmp_path / "r")
    for view, tensor, suffix in [
        ("filters", "conv/kernel", "png"),
        ("weights", "dense/kernel", "svg"),
        ("overview", None, "pdf"),
        ("histograms", "dense/kernel", "png"),
    ]:
        out = tmp_path / f"{view}.{suffix}"
        args = ["plot", str(tmp_path / "r"), view] + ([tensor] if tensor else []) + ["-o", str(out)]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert out.stat().st_size > 1000
    from matplotlib.image import imread

    assert imread(tmp_path / "filters.png").shape[2] in (3, 4)


def test_plot_names_the_closest_view_and_tensor(tmp_path):
    small_run(tmp_path / "r")
    result = runner.invoke(
        app, ["plot", str(tmp_path / "r"), "filtres", "conv/kernel", "-o", str(tmp_path / "x.png")]
    )
    assert result.exit_code == 2 and "Did you mean: filters" in result.output
    result = runner.invoke(
        app, ["plot", str(tmp_path / "r"), "filters", "conv/kernal", "-o", str(tmp_path / "x.png")]
    )
    assert result.exit_code == 2 and "Did you mean: conv/kernel" in result.output


def test_animate_and_doctor(tmp_path):
    small_run(tmp_path / "r")
    result = runner.invoke(
        app,
        ["animate", str(tmp_path / "r"), "weights", "dense/kernel", "-o", str(tmp_path / "w.gif")],
    )
    assert result.exit_code == 0, result.output
    assert "4 frames" in result.output
    result = runner.invoke(app, ["doctor", str(tmp_path / "r")])
    assert result.exit_code == 0 and "No problems found" in result.output


def test_version_and_doctor_fail_on_for_ci(tmp_path):
    import numpy as np
    from typer.testing import CliRunner

    import weightlapse
    from weightlapse.cli import app

    runner = CliRunner()
    assert (
        runner.invoke(app, ["--version"]).output.strip() == f"weightlapse {weightlapse.__version__}"
    )
    w = np.ones((4, 4))
    with weightlapse.create(tmp_path / "r") as run:
        for step in range(5):
            w = w.copy()
            if step == 3:
                w[0, 0] = np.nan
            run.log(step, {"w": w})
    path = str(tmp_path / "r")
    assert runner.invoke(app, ["doctor", path]).exit_code == 0  # reports, exit 0
    failed = runner.invoke(app, ["doctor", path, "--fail-on", "error"])
    assert failed.exit_code == 1 and "nan-inf" in failed.output and "error" in failed.output
    assert runner.invoke(app, ["doctor", path, "--fail-on", "bogus"]).exit_code == 2


def test_ls_and_json_for_scripts(tmp_path):
    import json

    import numpy as np
    from typer.testing import CliRunner

    import weightlapse
    from weightlapse.cli import app

    for name in ("a", "nested/b"):
        with weightlapse.create(tmp_path / name) as run:
            for step in range(3):
                run.log(step, {"w": np.ones(2) * step}, loss=1.0 / (step + 1))
    runner = CliRunner()
    listed = runner.invoke(app, ["ls", str(tmp_path)])
    assert listed.exit_code == 0 and "nested/b" in listed.output and "ended" in listed.output
    data = json.loads(runner.invoke(app, ["ls", str(tmp_path), "--json"]).output)
    assert [r["name"] for r in data] == ["a", "nested/b"]
    assert data[0]["steps"] == 3 and abs(data[0]["scalars"]["loss"] - 1 / 3) < 1e-12
    info = json.loads(runner.invoke(app, ["info", str(tmp_path / "a"), "--json"]).output)
    assert info["tensors"][0]["name"] == "w" and info["last_step"] == 2 and not info["live"]
    doctor = json.loads(runner.invoke(app, ["doctor", str(tmp_path / "a"), "--json"]).output)
    assert isinstance(doctor, list)


def test_inspect_json_and_tensor_globs(tmp_path):
    import json

    import numpy as np
    from typer.testing import CliRunner

    import weightlapse
    from weightlapse.cli import app

    weights = {
        "conv1.weight": np.ones((2, 1, 3, 3)),
        "conv1.bias": np.array([np.nan, 1.0]),
        "fc.weight": np.zeros((3, 4)),
        "broken": np.full(3, np.nan),  # no finite value: min, max, mean are NaN
    }
    np.savez(tmp_path / "m.npz", **weights)
    runner = CliRunner()
    out = runner.invoke(app, ["inspect", str(tmp_path / "m.npz"), "--json"])

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    data = json.loads(out.output, parse_constant=refuse)  # NaN statistics are null
    rows = {r["name"]: r for r in data["tensors"]}
    assert data["format"] and set(rows) == set(weights)
    assert rows["conv1.bias"]["nan_count"] == 1 and rows["conv1.bias"]["min"] == 1.0
    assert rows["conv1.weight"]["shape"] == [2, 1, 3, 3]
    assert rows["broken"]["min"] is None and rows["broken"]["nan_count"] == 3
    with weightlapse.create(tmp_path / "r") as run:
        for step in range(2):
            run.log(
                step,
                {
                    "conv1": {"weight": np.ones(2) * step, "bias": np.ones(1)},
                    "fc": {"weight": np.full(3, np.nan)},
                },
            )
    info = json.loads(
        runner.invoke(app, ["info", str(tmp_path / "r"), "--json", "-t", "conv1*"]).output
    )
    assert [t["name"] for t in info["tensors"]] == ["conv1/weight", "conv1/bias"]
    doctor = runner.invoke(app, ["doctor", str(tmp_path / "r"), "--json", "--tensors", "conv1/*"])
    assert all(f["tensor"].startswith("conv1/") for f in json.loads(doctor.output))
    wrong = runner.invoke(app, ["info", str(tmp_path / "r"), "-t", "nope*"])
    assert wrong.exit_code == 2 and "nope*" in wrong.output and "conv1/weight" in wrong.output


def test_every_command_and_option_says_what_it_is_for():
    import click
    import typer

    from weightlapse.cli import app

    root = typer.main.get_command(app)
    missing = []

    def walk(command, path):
        if not (command.help or command.short_help):
            missing.append(path)
        for param in command.params:
            if isinstance(param, click.Option) and not param.help:
                missing.append(f"{path} {param.opts[0]}")
            if isinstance(param, click.Argument) and not getattr(param, "help", None):
                missing.append(f"{path} {param.name}")
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, f"{path} {name}")

    walk(root, "weightlapse")
    assert missing == []
