"""`python -m weightlapse.cli`: the same as the `weightlapse` command."""

from weightlapse.cli import app

app()
