"""`catdog data ...` commands."""

import typer

app = typer.Typer(help="Validate, normalise, de-duplicate and split photos.", no_args_is_help=True)
