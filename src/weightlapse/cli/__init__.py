"""The `weightlapse` command, one module per command group; the logic lives in the
library. Each command imports what it needs when it runs, so `--help` stays fast."""

from __future__ import annotations

import typer

from weightlapse.cli import demo, models, runs, view

app = typer.Typer(
    help="weightlapse: watch a neural network learn.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _version(show: bool) -> None:
    if show:
        from importlib.metadata import version

        typer.echo(f"weightlapse {version('weightlapse')}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """weightlapse: watch a neural network learn."""


app.add_typer(demo.app, name="demo")
runs.register(app)
models.register(app)
app.command("view")(view.view)

__all__ = ["app"]
