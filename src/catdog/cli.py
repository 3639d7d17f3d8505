"""The `catdog` command: parses arguments and hands over to the stage that does the work.

Each stage package has a `cli.py` with its typer commands; they import their heavy libraries
(torch, MLflow, ONNX Runtime) inside the command, so `catdog --help` is fast and the torch-free
serving install can run `catdog serve`. Errors are mapped to exit codes here, once.
"""

from __future__ import annotations

import sys

import typer

from catdog.data.cli import app as data_app
from catdog.errors import CatdogError
from catdog.monitoring import cli as monitoring_cli
from catdog.serving.cli import app as serving_app
from catdog.terminal import console
from catdog.training import commands as training_commands
from catdog.training.cli import train

app = typer.Typer(
    name="catdog",
    help="Tell cats from dogs: data, training, export, serving and monitoring.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data_app, name="data")
app.add_typer(serving_app)  # serve, predict, smoke
app.command()(train)
app.command()(training_commands.evaluate)
app.command()(training_commands.export)
app.command()(training_commands.promote)
app.command()(monitoring_cli.simulate)
app.add_typer(monitoring_cli.app, name="monitor")


def main() -> None:
    """Entry point: run the CLI and turn catdog's own errors into a message and an exit code."""
    try:
        app()
    except CatdogError as exc:
        console.print(f"[bold red]error[/] ({exc.reason}): {exc.detail}")
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
