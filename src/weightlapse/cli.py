"""The `weightlapse` command: demos, and a look at a recorded run."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from weightlapse.errors import WeightlapseError

app = typer.Typer(
    help="weightlapse: watch a neural network learn.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
demo_app = typer.Typer(help="The user stories, as runnable demos (offline).", no_args_is_help=True)
app.add_typer(demo_app, name="demo")
# Piped output (CI logs, files) gets room for wide tables instead of 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def clean_errors(func: F) -> F:
    """Our own errors become one red line and exit code 2, not a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except WeightlapseError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


FrameworkOpt = typer.Option("torch", "--framework", "-f", help="torch or keras.")
BackendOpt = typer.Option(
    None, "--keras-backend", help="Keras backend: torch, tensorflow or jax (default: torch)."
)
DataOpt = typer.Option(
    None,
    "--data",
    help="MNIST folder (IDX files) or Keras mnist.npz; default: a cached Keras download, "
    "else scikit-learn's 8x8 digits.",
)
SeedOpt = typer.Option(0, help="Random seed.")
OutOpt = typer.Option(Path("weightlapse-demo"), "--out", "-o", help="Folder for runs and figures.")


@demo_app.command("neuron")
@clean_errors
def demo_neuron(
    framework: str = FrameworkOpt,
    keras_backend: str | None = BackendOpt,
    out: Path = OutOpt,
    seed: int = SeedOpt,
) -> None:
    """Story 1: one tanh neuron; its two weights climb to 1.0 over the batches."""
    from weightlapse.demos.neuron import run_neuron

    with console.status(f"Training the neuron with {framework}..."):
        result = run_neuron(framework, out, seed=seed, keras_backend=keras_backend)
    console.print(f"test loss before training: {result.loss_before:.4g}")
    console.print(
        f"test loss after 10 epochs: {result.loss_after:.4g} "
        f"({result.loss_before / result.loss_after:,.0f}x lower)"
    )
    console.print(f"weights {result.weights.round(4).tolist()}, bias {result.bias:.4f}")
    console.print(f"run: {result.run_path}\nfigure: {result.figure_path}")


@demo_app.command("mnist")
@clean_errors
def demo_mnist(
    framework: str = FrameworkOpt,
    keras_backend: str | None = BackendOpt,
    data: Path | None = DataOpt,
    epochs: int = typer.Option(10, help="Epochs to train."),
    out: Path = OutOpt,
    seed: int = SeedOpt,
) -> None:
    """Story 2: a linear softmax classifier; its ten class templates as images."""
    from weightlapse.demos.mnist import run_mnist

    def report(epoch: int, seconds: float, accuracy: float) -> None:
        console.print(f"epoch {epoch:2d}: {seconds:6.2f} s, validation accuracy {accuracy:.4f}")

    result = run_mnist(
        framework,
        out,
        data=data,
        epochs=epochs,
        seed=seed,
        keras_backend=keras_backend,
        report=report,
    )
    console.print(f"data: {result.source}")
    for epoch, (lo, hi) in result.weight_range.items():
        console.print(f"weights after epoch {epoch}: min {lo:.4f}, max {hi:.4f}")
    console.print(f"run: {result.run_path}")
    for path in result.figure_paths:
        console.print(f"figure: {path}")


@demo_app.command("cnn")
@clean_errors
def demo_cnn(
    framework: str = FrameworkOpt,
    keras_backend: str | None = BackendOpt,
    data: Path | None = DataOpt,
    epochs: int = typer.Option(3, help="Epochs to train."),
    out: Path = typer.Option(
        Path("weightlapse-gallery"), "--out", "-o", help="Folder for the run and the gallery."
    ),
    seed: int = SeedOpt,
) -> None:
    """A gallery: a small conv net, recorded with activation probes; every view and an
    animation of its first layer's filters."""
    from weightlapse.demos.cnn import run_cnn

    with console.status("...") as status:
        result = run_cnn(
            framework,
            out,
            data=data,
            epochs=epochs,
            seed=seed,
            keras_backend=keras_backend,
            progress=status.update,
        )
    console.print(f"data: {result.source}")
    accuracies = ", ".join(f"{a:.3f}" for a in result.val_accuracy)
    console.print(f"validation accuracy by epoch: {accuracies}")
    console.print(f"run: {result.run_path}")
    for path in result.files:
        console.print(f"  {path}")
    console.print(f"done in {result.seconds:.0f} s")


@app.command("info")
@clean_errors
def info(run_path: Path = typer.Argument(..., help="A recorded run.")) -> None:
    """What a run holds: tensors, steps, scalars and size on disk (also while it is written)."""
    from weightlapse.run import open as open_run

    run = open_run(run_path)
    steps = run.steps
    meta = run.meta
    console.print(
        f"[bold]{run_path}[/]  format v{run.format_version}, "
        f"framework {meta.get('framework', '?')}, kinds {', '.join(run.kinds) or '-'}"
    )
    span = f"{int(steps[0])}..{int(steps[-1])}" if len(steps) else "none yet"
    console.print(
        f"{len(steps)} recorded steps ({span}); scalars: "
        f"{', '.join(run.scalar_names) or 'none'}; size on disk {_size(run_path)}"
    )
    table = Table("tensor", "shape", "dtype", "layer", "snapshots", "last L2")
    for name in run.tensors:
        history = run[name]
        l2 = history.stats["l2"]
        table.add_row(
            name,
            "x".join(map(str, history.shape)) or "scalar",
            history.dtype,
            history.layer,
            str(len(history.snapshot_steps)),
            f"{l2[-1]:.4g}" if len(l2) else "-",
        )
    console.print(table)


@app.command("plot")
@clean_errors
def plot(
    run_path: Path = typer.Argument(..., help="A recorded run."),
    view: str = typer.Argument(
        ...,
        help="trajectories, weights, filters, heatmap, histograms, "
        "ridgeline, stats, overview or activations.",
    ),
    tensor: str | None = typer.Argument(None, help="Tensor (or layer) name."),
    out: Path = typer.Option(..., "--out", "-o", help="Image file: .png, .svg or .pdf."),
    step: int | None = typer.Option(None, help="Step (image views; default: the last)."),
    minus_step: int | None = typer.Option(None, help="heatmap: draw step minus this step."),
    kind: str | None = typer.Option(None, help="param, grad, update (default param)."),
    stat: str | None = typer.Option(None, help="overview: the statistic (default l2)."),
    channel: int | None = typer.Option(None, help="filters: only this input channel."),
    sample: int | None = typer.Option(None, help="activations: which probe input."),
    log: bool | None = typer.Option(None, "--log", help="histograms: log colour scale."),
    dpi: int = typer.Option(120, help="Resolution of raster images."),
) -> None:
    """Draws one view of a run to an image file (also while the run is written)."""
    from weightlapse.run import open as open_run
    from weightlapse.views.registry import render

    if out.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise WeightlapseError(f"{out.name}: write a .png, .svg or .pdf file.")
    fig = render(
        open_run(run_path),
        view,
        tensor,
        step=step,
        minus_step=minus_step,
        kind=kind,
        stat=stat,
        channel=channel,
        sample=sample,
        log=log,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    console.print(f"wrote {out}")


@app.command("animate")
@clean_errors
def animate_command(
    run_path: Path = typer.Argument(..., help="A recorded run."),
    view: str = typer.Argument(
        ...,
        help="weights, filters, heatmap, activations (per "
        "snapshot) or trajectories, histograms, stats (a cursor).",
    ),
    tensor: str = typer.Argument(..., help="Tensor (or layer) name."),
    out: Path = typer.Option(..., "--out", "-o", help="A .gif or .mp4 file."),
    fps: float = typer.Option(8.0, help="Frames per second."),
    every: int = typer.Option(1, help="Use every N-th available step."),
    free_scale: bool = typer.Option(
        False, "--free-scale", help="Rescale colours per frame (default: one scale)."
    ),
) -> None:
    """Animates a view over the recorded steps, with a progress bar."""
    from weightlapse.run import open as open_run
    from weightlapse.views.animate import animate, check_view, default_steps

    run = open_run(run_path)
    check_view(view)
    steps = default_steps(run, view, tensor)[:: max(1, every)]
    animate(run, view, tensor, out, steps=steps, fps=fps, fixed_scale=not free_scale)
    console.print(f"wrote {out} ({len(steps)} frames)")


@app.command("doctor")
@clean_errors
def doctor(run_path: Path = typer.Argument(..., help="A recorded run.")) -> None:
    """Names what went wrong in a run and when: NaN/Inf, exploding or vanishing
    gradients, update ratios far from 1e-3, dead units, layers that never moved."""
    from weightlapse.health import diagnose
    from weightlapse.run import open as open_run

    findings = diagnose(open_run(run_path))
    if not findings:
        console.print("No problems found.")
        return
    table = Table("check", "tensor", "kind", "from step", "statistic", "what")
    for f in findings:
        table.add_row(
            f.check, f.tensor, f.kind, str(f.step), f"{f.statistic}={f.value:.3g}", f.message
        )
    console.print(table)


TrustOpt = typer.Option(
    False, "--trust-pickle", help="Allow unpickling Python objects (only for files you trust)."
)


@app.command("inspect")
@clean_errors
def inspect_command(
    file: Path = typer.Argument(
        ...,
        help="safetensors, .pt/.pth, .keras, .h5, .onnx, .npy, .npz or a TensorFlow checkpoint.",
    ),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write each layer's views here."),
    trust_pickle: bool = TrustOpt,
) -> None:
    """Every tensor of a saved model, without training it; with -o, its views."""
    from weightlapse.io.checkpoints import load_weights, read_checkpoint
    from weightlapse.io.inspect import tensor_rows, write_views

    checkpoint = read_checkpoint(file, trust_pickle=trust_pickle)
    table = Table(
        "tensor",
        "shape",
        "dtype",
        "size",
        "min",
        "max",
        "mean",
        "std",
        "NaN",
        "Inf",
        title=f"{file} ({checkpoint.format}, {len(checkpoint.tensors)} tensors)",
    )
    for row in tensor_rows(checkpoint.tensors):
        table.add_row(
            str(row["name"]),
            "x".join(map(str, row["shape"])) or "scalar",
            str(row["dtype"]),
            f"{row['size']:,}",
            *(f"{row[k]:.4g}" for k in ("min", "max", "mean", "std")),
            str(int(row["nan_count"])),
            str(int(row["inf_count"])),
        )
    console.print(table)
    if out is not None:
        written = write_views(load_weights(file, trust_pickle=trust_pickle), out)
        console.print(f"wrote {len(written)} views to {out}")


@app.command("diff")
@clean_errors
def diff_command(
    a: Path = typer.Argument(..., help="The earlier checkpoint."),
    b: Path = typer.Argument(..., help="The later checkpoint of the same model."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Write a heat map of the most changed 2-D tensor."
    ),
    trust_pickle: bool = TrustOpt,
) -> None:
    """Which tensors moved between two checkpoints, and how much (||B-A|| / ||A||)."""
    from weightlapse.io.checkpoints import read_checkpoint
    from weightlapse.io.compare import compare
    from weightlapse.views.heatmap import heatmap

    first = read_checkpoint(a, trust_pickle=trust_pickle)
    second = read_checkpoint(b, trust_pickle=trust_pickle)
    result = compare(first, second)
    table = Table("tensor", "shape", "relative change", "max |change|")
    for c in result.changes:
        table.add_row(c.name, "x".join(map(str, c.shape)), f"{c.relative:.4g}", f"{c.max_abs:.4g}")
    console.print(table)
    for label, names in (
        ("only in A", result.only_in_a),
        ("only in B", result.only_in_b),
        ("shape changed", result.shape_changed),
    ):
        if names:
            console.print(f"{label}: {', '.join(names)}")
    if out is not None:
        moved = [c for c in result.changes if len(c.shape) >= 2]
        if not moved:
            raise WeightlapseError("No tensor of two or more axes to draw a difference of.")
        name = moved[0].name
        delta = second.tensors[name].astype(float) - first.tensors[name].astype(float)
        fig = heatmap(delta, f"{name} (B - A)")
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=110)
        console.print(f"wrote {out}")


@app.command("import")
@clean_errors
def import_command(
    folder: Path = typer.Argument(..., help="Checkpoints saved during training."),
    run_path: Path = typer.Argument(..., help="The run to create."),
    overwrite: bool = typer.Option(False, help="Replace an existing run."),
    trust_pickle: bool = TrustOpt,
) -> None:
    """A folder of checkpoints (epoch_1.pt, epoch_2.pt, ...) as a run, one step each."""
    from weightlapse.io.checkpoints import import_checkpoints

    run = import_checkpoints(
        folder, run_path, trust_pickle=trust_pickle, overwrite=overwrite, progress=True
    )
    console.print(
        f"{run_path}: {len(run.steps)} steps ({', '.join(map(str, run.steps[:8]))}"
        f"{' ...' if len(run.steps) > 8 else ''}), {len(run.tensors)} tensors"
    )


@app.command("export")
@clean_errors
def export_command(
    run_path: Path = typer.Argument(..., help="A recorded run."),
    tensorboard: Path | None = typer.Option(
        None, "--tensorboard", help="Write TensorBoard event files here."
    ),
    npz: Path | None = typer.Option(None, "--npz", help="Write every snapshot to this .npz."),
) -> None:
    """A run to TensorBoard (scalars, histograms at every step, filter images) or .npz."""
    from weightlapse.io.export import export_npz, export_tensorboard
    from weightlapse.run import open as open_run

    if tensorboard is None and npz is None:
        raise WeightlapseError("Say where to export: --tensorboard LOGDIR and/or --npz FILE.")
    run = open_run(run_path)
    if tensorboard is not None:
        with console.status("writing TensorBoard events..."):
            export_tensorboard(run, tensorboard)
        console.print(f"wrote {tensorboard} (tensorboard --logdir {tensorboard})")
    if npz is not None:
        console.print(f"wrote {export_npz(run, npz)}")


@app.command("explain")
@clean_errors
def explain(
    model_file: Path = typer.Argument(
        ...,
        help="A Keras .keras/.h5 model, a TorchScript file, "
        "or a pickled PyTorch model (with --trust-pickle).",
    ),
    input_file: Path = typer.Argument(..., help="An image or a .npy input."),
    out: Path = typer.Option(..., "--out", "-o", help="The figure: .png, .svg or .pdf."),
    method: list[str] = typer.Option(
        ["saliency"],
        "--method",
        "-m",
        help="saliency, smoothgrad, deconvnet, guided, integrated, "
        "gradcam, gradcam++ (repeat for a grid).",
    ),
    layer: str | None = typer.Option(None, help="The layer for gradcam (the last conv)."),
    target: int | None = typer.Option(None, help="The class to explain (default: the top)."),
    alpha: float = typer.Option(0.5, help="Opacity of the map over the input."),
    trust_pickle: bool = TrustOpt,
) -> None:
    """What a saved model responds to in an input, by one or more attribution methods."""
    from weightlapse.interpret.activations import framework_of
    from weightlapse.interpret.loading import fit_batch, load_input, load_model
    from weightlapse.interpret.methods import make_method
    from weightlapse.views.attributions import attribution_grid, attribution_overlay

    model = load_model(model_file, trust_pickle=trust_pickle)
    channels_last = framework_of(model) == "keras"
    x = fit_batch(load_input(input_file, channels_last), model, channels_last)
    maps = {}
    for name in method:
        m = make_method(name, model)
        maps[name] = m.attribute(x, target=target, layer=layer if m.needs_layer else None)
    if len(maps) == 1:
        name, values = next(iter(maps.items()))
        fig = attribution_overlay(x[0], values[0], alpha=alpha, side_by_side=True, title=name)
    else:
        fig = attribution_grid(x[:1], maps, alpha=alpha)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    console.print(f"wrote {out}")


@app.command("view")
@clean_errors
def view(
    runs_dir: Path = typer.Argument(Path("."), help="The folder holding your runs."),
    port: int = typer.Option(8050, help="Port to serve on."),
    host: str = typer.Option("127.0.0.1", help="Address to bind (local only by default)."),
    browser: bool = typer.Option(True, "--browser/--no-browser", help="Open a browser."),
) -> None:
    """The live dashboard: runs, tensors, every view, a step slider that plays training
    back, two runs side by side. New runs and new steps appear while they are written."""
    import threading
    import webbrowser

    import uvicorn

    from weightlapse.dashboard.app import create_app

    application = create_app(runs_dir)
    address = f"http://{host}:{port}/"
    console.print(f"weightlapse dashboard for {runs_dir} at {address} (Ctrl+C stops it)")
    if browser:
        threading.Timer(1.0, webbrowser.open, args=(address,)).start()
    uvicorn.run(application, host=host, port=port, log_level="warning")


def _size(path: Path) -> str:
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if total < 1024 or unit == "GiB":
            return f"{total:.0f} {unit}" if unit == "B" else f"{total:.1f} {unit}"
        total /= 1024
    return f"{total:.1f} GiB"


if __name__ == "__main__":
    app()
