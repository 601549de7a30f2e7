"""`weightlapse view`: the live dashboard."""

from __future__ import annotations

import typer

from weightlapse.cli.common import clean_errors, console


@clean_errors
def view(
    runs_dir: str = typer.Argument(
        ".", help="The folder holding your runs, or an object-store URL (s3://bucket/runs)."
    ),
    port: int = typer.Option(8050, help="Port to serve on."),
    host: str = typer.Option(
        "127.0.0.1",
        help="Address to bind (local only by default). Any other address needs the token "
        "the dashboard prints at start.",
    ),
    browser: bool = typer.Option(True, "--browser/--no-browser", help="Open a browser."),
) -> None:
    """The live dashboard: runs, tensors, every view, a step slider that plays training
    back, two runs side by side. New runs and new steps appear while they are written."""
    import secrets
    import threading
    import webbrowser

    import uvicorn

    from weightlapse.dashboard.app import LOOPBACK, create_app

    token = None if host in LOOPBACK else secrets.token_urlsafe(24)
    application = create_app(runs_dir, host=host, token=token)
    address = f"http://{host}:{port}/" + (f"?token={token}" if token else "")
    console.print(f"weightlapse dashboard for {runs_dir} at {address} (Ctrl+C stops it)")
    if browser:
        threading.Timer(1.0, webbrowser.open, args=(address,)).start()
    # Open event streams would hold a Ctrl-C for ever: give them a second to close.
    uvicorn.run(application, host=host, port=port, log_level="warning", timeout_graceful_shutdown=1)
