"""`weightlapse demo`: the user stories, as runnable demos (offline but for `mnist`'s
MNIST fetch, which falls back to bundled digits)."""

from __future__ import annotations

from pathlib import Path

import typer

from weightlapse.cli.common import clean_errors, console

app = typer.Typer(help="The user stories, as runnable demos (offline).", no_args_is_help=True)

FrameworkOpt = typer.Option("torch", "--framework", "-f", help="torch or keras.")
BackendOpt = typer.Option(
    None, "--keras-backend", help="Keras backend: torch, tensorflow or jax (default: torch)."
)
DataOpt = typer.Option(
    None,
    "--data",
    help="MNIST folder (IDX files) or Keras mnist.npz; default: MNIST cached by an earlier "
    "fetch, else scikit-learn's 8x8 digits.",
)
SeedOpt = typer.Option(0, help="Random seed.")
OutOpt = typer.Option(Path("weightlapse-demo"), "--out", "-o", help="Folder for runs and figures.")


@app.command("neuron")
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


@app.command("mnist")
@clean_errors
def demo_mnist(
    framework: str = FrameworkOpt,
    keras_backend: str | None = BackendOpt,
    data: Path | None = DataOpt,
    epochs: int = typer.Option(10, help="Epochs to train."),
    out: Path = OutOpt,
    seed: int = SeedOpt,
    no_fetch: bool = typer.Option(
        False,
        "--offline",
        help="Never fetch MNIST: without --data or a cached copy, use scikit-learn's digits.",
    ),
) -> None:
    """Story 2: a linear softmax classifier; its ten class templates as images. Without
    --data it fetches MNIST once (11 MB, checksummed, cached under ~/.cache/weightlapse),
    and falls back to scikit-learn's 8x8 digits when it cannot, saying so."""
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
        fetch=not no_fetch,
    )
    console.print(f"data: {result.source}")
    for epoch, (lo, hi) in result.weight_range.items():
        console.print(f"weights after epoch {epoch}: min {lo:.4f}, max {hi:.4f}")
    console.print(f"run: {result.run_path}")
    for path in result.figure_paths:
        console.print(f"figure: {path}")


@app.command("cnn")
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
