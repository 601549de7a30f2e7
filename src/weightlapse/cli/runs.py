"""Commands on recorded runs: info, plot, animate, doctor, export."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from weightlapse.cli.common import (
    JsonOpt,
    TensorsOpt,
    clean_errors,
    console,
    human_bytes,
    print_json,
    print_table,
)
from weightlapse.errors import WeightlapseError


def register(app: typer.Typer) -> None:
    for command in (ls, info, plot, animate_command, doctor, export_command, check):
        app.command(command.__name__.removesuffix("_command"))(command)


@clean_errors
def info(
    run_path: str = typer.Argument(..., help="A recorded run (a folder, or a URL: s3://...)."),
    tensors: list[str] | None = TensorsOpt,
    as_json: bool = JsonOpt,
) -> None:
    """What a run holds: tensors, steps, scalars and size on disk (also while it is written)."""
    from weightlapse.catalog import run_summary
    from weightlapse.names import resolve_tensors
    from weightlapse.run import open as open_run

    run = open_run(run_path)
    summary = run_summary(run, run_path)
    if tensors:
        chosen = set(resolve_tensors(run, tensors))
        summary["tensors"] = [t for t in summary["tensors"] if t["name"] in chosen]
    if as_json:
        print_json(summary)
        return
    console.print(
        f"[bold]{run_path}[/]  format v{summary['format_version']}, framework "
        f"{summary['framework'] or '?'}, kinds {', '.join(summary['kinds']) or '-'}, "
        f"{'live' if summary['live'] else 'ended'}"
    )
    span = f"{summary['first_step']}..{summary['last_step']}" if summary["steps"] else "none yet"
    console.print(
        f"{summary['steps']} recorded steps ({span}); scalars: "
        f"{', '.join(summary['scalars']) or 'none'}; size on disk "
        f"{human_bytes(summary['size_bytes'])}"
    )
    rows = [
        (
            t["name"],
            "x".join(map(str, t["shape"])) or "scalar",
            t["dtype"],
            t["layer"],
            str(t["snapshots"]),
            f"{t['last_l2']:.4g}" if t["last_l2"] is not None else "-",
        )
        for t in summary["tensors"]
    ]
    print_table("", ("tensor", "shape", "dtype", "layer", "snapshots", "last L2"), rows)


@clean_errors
def ls(
    runs_dir: str = typer.Argument(".", help="A folder of runs, or a URL (s3://bucket/runs)."),
    as_json: bool = JsonOpt,
) -> None:
    """The runs under a folder: steps, last step, size, live or ended, last loss."""
    from weightlapse.catalog import list_runs
    from weightlapse.store.location import RunsRoot

    if not RunsRoot(runs_dir).exists():
        raise WeightlapseError(f"{runs_dir}: not a folder. Give the folder that holds your runs.")
    runs = list_runs(runs_dir)
    if as_json:
        print_json(runs)
        return
    rows = []
    for r in runs:
        if "error" in r:
            rows.append((r["name"], "-", "-", "-", "damaged", r["error"][:60]))
            continue
        loss = r["scalars"].get("loss")
        rows.append(
            (
                r["name"],
                str(r["steps"]),
                str(r["last_step"]) if r["last_step"] is not None else "-",
                human_bytes(r["size_bytes"]),
                "live" if r["live"] else "ended",
                f"{loss:.4g}" if loss is not None else "-",
            )
        )
    print_table(
        f"{runs_dir}: {len(runs)} runs",
        ("run", "steps", "last step", "size", "state", "last loss"),
        rows,
    )


@clean_errors
def plot(
    run_path: str = typer.Argument(..., help="A recorded run (a folder, or a URL: s3://...)."),
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


@clean_errors
def animate_command(
    run_path: str = typer.Argument(..., help="A recorded run (a folder, or a URL: s3://...)."),
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


@clean_errors
def doctor(
    run_path: str = typer.Argument(..., help="A recorded run (a folder, or a URL: s3://...)."),
    fail_on: str = typer.Option(
        "never",
        "--fail-on",
        help="Exit 1 when a finding is at least this severe: never, warning, error "
        "(NaN/Inf, exploding gradients). For CI.",
    ),
    tensors: list[str] | None = TensorsOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Names what went wrong in a run and when: NaN/Inf, exploding or vanishing
    gradients, update ratios far from 1e-3, dead units, layers that never moved. One line
    per kind of problem with the tensors it hit (--json: one entry per tensor)."""
    from weightlapse.health import LEVELS, diagnose, grouped
    from weightlapse.run import open as open_run

    if fail_on not in LEVELS:
        raise WeightlapseError(f"--fail-on {fail_on}: give one of {', '.join(LEVELS)}.")
    run = open_run(run_path)
    findings = diagnose(run)
    if tensors:
        from weightlapse.names import resolve_tensors

        chosen = set(resolve_tensors(run, tensors))
        findings = [f for f in findings if f.tensor in chosen]
    worst = max((LEVELS.index(f.severity) for f in findings), default=0)
    failed = fail_on != "never" and bool(findings) and worst >= LEVELS.index(fail_on)
    if as_json:
        print_json([{**vars(f), "severity": f.severity} for f in findings])
        if failed:
            raise typer.Exit(1)
        return
    if not findings:
        console.print("No problems found.")
        return
    table = Table("check", "severity", "kind", "from step", "tensors", "worst", "what")
    for group in grouped(findings):
        names = group.tensors
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        worst = group.worst
        table.add_row(
            group.check,
            group.severity,
            group.kind,
            str(group.step),
            f"{len(names)}: {shown}",
            f"{worst.tensor}: {worst.statistic}={worst.value:.3g}",
            worst.message,
        )
    console.print(table)
    if failed:
        raise typer.Exit(1)


@clean_errors
def export_command(
    run_path: str = typer.Argument(..., help="A recorded run (a folder, or a URL: s3://...)."),
    tensorboard: Path | None = typer.Option(
        None, "--tensorboard", help="Write TensorBoard event files here."
    ),
    npz: Path | None = typer.Option(None, "--npz", help="Write every snapshot to this .npz."),
    images: str = typer.Option(
        "snapshots",
        "--images",
        help="TensorBoard images: snapshots (each tensor's best picture at each snapshot), "
        "all (every picture that fits), none.",
    ),
    tensors: list[str] | None = TensorsOpt,
) -> None:
    """A run to TensorBoard (scalars, statistics, histograms at every step, pictures of
    the snapshots) or .npz."""
    from rich.progress import Progress

    from weightlapse.io.export import export_npz, export_tensorboard
    from weightlapse.run import open as open_run

    if tensorboard is None and npz is None:
        raise WeightlapseError("Say where to export: --tensorboard LOGDIR and/or --npz FILE.")
    run = open_run(run_path)
    if tensorboard is not None:
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("TensorBoard events", total=None)

            def show(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            export_tensorboard(run, tensorboard, images=images, tensors=tensors, progress=show)
        console.print(f"wrote {tensorboard} (tensorboard --logdir {tensorboard})")
    if npz is not None:
        console.print(f"wrote {export_npz(run, npz, tensors=tensors)}")


@clean_errors
def check(
    run_path: str = typer.Argument(..., help="A recorded run (a folder, or a URL: s3://...)."),
    repair: bool = typer.Option(
        False, "--repair", help="Truncate a damaged run to its last whole step."
    ),
) -> None:
    """Verifies a run: its attributes, every array against committed_steps, every chunk
    readable. Exit code 2 when anything is wrong (after --repair: when it could not be)."""
    from weightlapse.store.check import check_run, remove_partial_files, repair_run

    problems = check_run(run_path)
    if not problems:
        console.print(f"{run_path}: whole.")
        return
    for problem in problems:
        console.print(f"{run_path}: {problem}", highlight=False)
    if not repair:
        raise WeightlapseError(
            f"{run_path}: {len(problems)} problem(s); `weightlapse check --repair` truncates "
            "the run to its last whole step."
        )
    kept = repair_run(run_path)
    removed = remove_partial_files(run_path)
    left = check_run(run_path)
    if left:
        raise WeightlapseError(f"{run_path}: repaired to {kept} steps, but {left[0]}")
    console.print(
        f"{run_path}: repaired: {kept} whole steps kept"
        + (f", {removed} stray partial files removed." if removed else ".")
    )
