"""Commands on saved models, no run needed: inspect, diff, import, explain."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from weightlapse.cli.common import (
    ExternalDataOpt,
    JsonOpt,
    MaxBytesOpt,
    TrustOpt,
    clean_errors,
    console,
    print_json,
    print_table,
    read_options,
)


def register(app: typer.Typer) -> None:
    for command in (inspect_command, diff_command, import_command, explain):
        app.command(command.__name__.removesuffix("_command"))(command)


@clean_errors
def inspect_command(
    file: Path = typer.Argument(
        ...,
        help="safetensors, .pt/.pth, .keras, .h5, .onnx, .npy, .npz or a TensorFlow checkpoint.",
    ),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write each layer's views here."),
    trust_pickle: bool = TrustOpt,
    max_bytes: int | None = MaxBytesOpt,
    allow_external_data: bool = ExternalDataOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Every tensor of a saved model, without training it; with -o, its views."""
    from weightlapse.io.formats import read_checkpoint
    from weightlapse.io.importing import load_weights
    from weightlapse.io.inspect import tensor_rows, write_views

    read = read_options(trust_pickle, max_bytes, allow_external_data)
    checkpoint = read_checkpoint(file, **read)
    title = f"{file} ({checkpoint.format}, {len(checkpoint.tensors)} tensors)"
    rows = tensor_rows(checkpoint.tensors, progress=not as_json)
    if as_json:
        print_json({"file": str(file), "format": checkpoint.format, "tensors": rows})
        if out is not None:
            write_views(load_weights(file, **read), out)
        return
    header = ("tensor", "shape", "dtype", "size", "min", "max", "mean", "std", "NaN", "Inf")
    cells = [
        (
            str(row["name"]),
            "x".join(map(str, row["shape"])) or "scalar",
            str(row["dtype"]),
            f"{row['size']:,}",
            *(f"{row[k]:.4g}" for k in ("min", "max", "mean", "std")),
            str(int(row["nan_count"])),
            str(int(row["inf_count"])),
        )
        for row in rows
    ]
    print_table(title, header, cells)
    if out is not None:
        written = write_views(load_weights(file, **read), out)
        console.print(f"wrote {len(written)} views to {out}")


@clean_errors
def diff_command(
    a: Path = typer.Argument(..., help="The earlier checkpoint."),
    b: Path = typer.Argument(..., help="The later checkpoint of the same model."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Write a heat map of the most changed 2-D tensor."
    ),
    trust_pickle: bool = TrustOpt,
    max_bytes: int | None = MaxBytesOpt,
    allow_external_data: bool = ExternalDataOpt,
) -> None:
    """Which tensors moved between two checkpoints, and how much (||B-A|| / ||A||)."""
    from weightlapse.io.compare import compare, largest_matrix_change
    from weightlapse.io.formats import read_checkpoint
    from weightlapse.views.heatmap import heatmap

    read = read_options(trust_pickle, max_bytes, allow_external_data)
    first = read_checkpoint(a, **read)
    second = read_checkpoint(b, **read)
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
        name, delta = largest_matrix_change(result, first, second)
        fig = heatmap(delta, f"{name} (B - A)")
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=110)
        console.print(f"wrote {out}")


@clean_errors
def import_command(
    folder: Path = typer.Argument(..., help="Checkpoints saved during training."),
    run_path: Path = typer.Argument(..., help="The run to create."),
    overwrite: bool = typer.Option(
        False, help="Delete the run at RUN_PATH and import anew (only ever a run)."
    ),
    resume: bool = typer.Option(
        False, help="Add the checkpoints to the run at RUN_PATH, after its last step."
    ),
    trust_pickle: bool = TrustOpt,
    max_bytes: int | None = MaxBytesOpt,
    allow_external_data: bool = ExternalDataOpt,
) -> None:
    """A folder of checkpoints (epoch_1.pt, epoch_2.pt, ...) as a run, one step each."""
    from weightlapse.io.importing import import_checkpoints

    run = import_checkpoints(
        folder,
        run_path,
        trust_pickle=trust_pickle,
        max_bytes=max_bytes,
        allow_external_data=allow_external_data,
        overwrite=overwrite,
        resume=resume,
        progress=True,
    )
    console.print(
        f"{run_path}: {len(run.steps)} steps ({', '.join(map(str, run.steps[:8]))}"
        f"{' ...' if len(run.steps) > 8 else ''}), {len(run.tensors)} tensors"
    )


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
    layer: str | None = typer.Option(
        None, help="The layer: for gradcam (the last conv), or whose feature map to project."
    ),
    top: int | None = typer.Option(
        None,
        help="With --layer: Zeiler and Fergus' figure: the inputs (a .npy batch) that "
        "activate the layer's most active maps most, and their projections.",
    ),
    target: int | None = typer.Option(None, help="The class to explain (default: the top)."),
    alpha: float = typer.Option(0.5, help="Opacity of the map over the input (--overlay)."),
    overlay: bool = typer.Option(
        False, "--overlay", help="Draw maps over the input (default: beside it, on its own)."
    ),
    trust_pickle: bool = TrustOpt,
) -> None:
    """What a saved model responds to in an input, by one or more attribution methods."""
    from weightlapse.interpret.explain import explain as explain_figure

    fig = explain_figure(
        model_file,
        input_file,
        method,
        layer=layer,
        target=target,
        alpha=alpha,
        overlay=overlay,
        top=top,
        trust_pickle=trust_pickle,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    console.print(f"wrote {out}")
