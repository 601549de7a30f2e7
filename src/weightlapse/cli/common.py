"""What every command shares: the consoles, one-line errors, the common options."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from weightlapse.errors import WeightlapseError

# A damaged chunk can fail several of zarr's concurrent reads; the first failure is said
# in one line, the others must not follow it as "Task exception was never retrieved".
logging.getLogger("asyncio").setLevel(logging.CRITICAL)

# Piped output (CI logs, files) gets room for wide tables instead of 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)
# An error is one line, also when stderr is a pipe or a file (no wrapping at 80 columns).
err_console = Console(stderr=True, soft_wrap=True)
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


TrustOpt = typer.Option(
    False, "--trust-pickle", help="Allow unpickling Python objects (only for files you trust)."
)
MaxBytesOpt = typer.Option(
    None,
    "--max-bytes",
    help="Refuse a file that declares more bytes of data than this (default: a quarter "
    "of this machine's memory).",
)
ExternalDataOpt = typer.Option(
    False,
    "--allow-external-data",
    help="Read ONNX external data files (only from the model's own folder).",
)


def read_options(
    trust_pickle: bool, max_bytes: int | None, allow_external_data: bool
) -> dict[str, Any]:
    """The checkpoint readers' keyword options, from the flags every model command has."""
    return {
        "trust_pickle": trust_pickle,
        "max_bytes": max_bytes,
        "allow_external_data": allow_external_data,
    }


JsonOpt = typer.Option(False, "--json", help="Print JSON instead of a table.")
TensorsOpt = typer.Option(
    None,
    "--tensors",
    "-t",
    help="Only these tensors: names, layer names or globs ('conv*'); repeat for more.",
)


def print_json(data: object) -> None:
    """Machine-readable output: one JSON document on stdout (NaN and Inf as null: JSON
    has neither, and `NaN` in the output would break every strict parser)."""
    import json
    import math

    def plain(value: object) -> object:
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if hasattr(value, "item") and callable(value.item):  # numpy scalars
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return value

    sys.stdout.write(json.dumps(plain(data), indent=1, default=str, allow_nan=False) + "\n")


def human_bytes(total: float | None) -> str:
    if total is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if total < 1024 or unit == "GiB":
            return f"{total:.0f} {unit}" if unit == "B" else f"{total:.1f} {unit}"
        total /= 1024
    return f"{total:.1f} GiB"


RICH_TABLE_ROWS = 1000  # past this, rich's layout costs more than the table is worth


def print_table(title: str, header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """A rich table; a plain aligned one for very many rows (its time grows with them)."""
    if len(rows) <= RICH_TABLE_ROWS:
        from rich.table import Table

        table = Table(*header, title=title or None)
        for row in rows:
            table.add_row(*row)
        console.print(table)
        return
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = [title, "  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    sys.stdout.write("\n".join(lines) + "\n")
