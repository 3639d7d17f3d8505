"""`catdog serve`, `catdog predict` and `catdog smoke`.

Only typer at the top: FastAPI, uvicorn, ONNX Runtime and httpx are imported by the command
that needs them, so `catdog --help` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from catdog.errors import ImageError, SmokeTestError

if TYPE_CHECKING:
    from catdog.serving.local import FileAnswer

app = typer.Typer()

ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="Path, export directory, models:/NAME@ALIAS or runs:/ URI. "
        "Default: $CATDOG_MODEL, else the shipped reference model.",
        show_default=False,
    ),
]


@app.command()
def serve(
    model: ModelOption = None,
    host: Annotated[str | None, typer.Option(help="Default: $CATDOG_HOST or 127.0.0.1.")] = None,
    port: Annotated[int | None, typer.Option(help="Default: $CATDOG_PORT or 8000.")] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Processes, each with its own model. Default: $CATDOG_WORKERS or 1."),
    ] = None,
) -> None:
    """Serve the model over HTTP: /predict, /predict/batch, /health, /ready, /metrics, / ..."""
    from catdog.serving.server import run_server  # noqa: PLC0415
    from catdog.serving.settings import load_settings  # noqa: PLC0415

    given: dict[str, Any] = {"model": model, "host": host, "port": port, "workers": workers}
    run_server(load_settings(**{k: v for k, v in given.items() if v is not None}))


@app.command()
def predict(
    images: Annotated[
        list[Path],
        typer.Argument(help="Photos, or folders of photos.", exists=True, readable=True),
    ],
    model: ModelOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per file on stdout.")
    ] = False,
    batch_size: Annotated[int, typer.Option(min=1, help="Photos per model run.")] = 32,
) -> None:
    """Classify local photos without a server. Exits 3 when any file was refused."""
    from catdog.model_store import model_line, resolve  # noqa: PLC0415
    from catdog.predictor import OnnxClassifier  # noqa: PLC0415
    from catdog.serving.local import classify_files, expand  # noqa: PLC0415
    from catdog.serving.settings import load_settings  # noqa: PLC0415
    from catdog.terminal import console, progress, summary_table  # noqa: PLC0415

    settings = load_settings()
    resolved = resolve(model if model is not None else settings.model)
    described = resolved.describe()
    console.print(model_line(described), highlight=False, soft_wrap=True)
    classifier = OnnxClassifier(resolved.path)
    if settings.pet_threshold is not None:
        classifier.pet_threshold = settings.pet_threshold
    paths = expand(images)
    answers = []
    with progress() as bar:
        task = bar.add_task("classifying", total=len(paths))
        for answer in classify_files(
            classifier,
            paths,
            batch_size=batch_size,
            max_pixels=settings.max_pixels,
            on_file=lambda: bar.advance(task),
        ):
            answers.append(answer)
            if as_json:
                typer.echo(json.dumps(_as_record(answer, described)))
    if not as_json:
        _print_table(answers)
    refused = sum(a.error is not None for a in answers)
    labels = [a.prediction.label for a in answers if a.prediction is not None]
    not_pets = sum(a.prediction is not None and a.prediction.is_pet is False for a in answers)
    summary_table(
        "catdog predict",
        [
            ("model", classifier.version),
            ("files", len(answers)),
            *((f"labelled {name}", labels.count(name)) for name in classifier.classes),
            ("not a pet?", not_pets),
            ("refused", refused),
        ],
    )
    if refused:
        console.print(f"[yellow]{refused} file(s) refused[/]: see the reasons above")
        raise typer.Exit(ImageError.exit_code)


def _as_record(answer: FileAnswer, model: dict[str, str]) -> dict[str, object]:
    """One JSON line: the file's answer and the model that gave it, or why it was refused."""
    if answer.prediction is not None:
        return {
            "file": str(answer.path),
            "label": answer.prediction.label,
            "confidence": answer.prediction.confidence,
            "probabilities": answer.prediction.probabilities,
            "is_pet": answer.prediction.is_pet,
            "pet_score": answer.prediction.pet_score,
            "model_version": model["version"],
            "model": model,
        }
    error = answer.error
    return {
        "file": str(answer.path),
        "error": error and error.reason,
        "detail": error and error.detail,
    }


def _print_table(answers: list[FileAnswer]) -> None:
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    table = Table("label", "confidence", "pet score", "refused because")
    table.add_column("file", overflow="fold")
    for answer in answers:
        if answer.prediction is not None:
            prediction = answer.prediction
            label = prediction.label if prediction.is_pet is not False else "[red]not a pet?[/]"
            pet = "" if prediction.pet_score is None else f"{prediction.pet_score:.2f}"
            table.add_row(label, f"{prediction.confidence:.1%}", pet, "", str(answer.path))
        elif answer.error is not None:
            reason = f"[red]{answer.error.reason}[/]: {answer.error.detail}"
            table.add_row("", "", "", reason, str(answer.path))
    Console().print(table)


@app.command()
def smoke(
    url: Annotated[str, typer.Option(help="Base URL of the deployed service.")],
    wait: Annotated[
        float, typer.Option(help="Seconds to wait for /health and /ready on a fresh deployment.")
    ] = 30.0,
    timeout: Annotated[float, typer.Option(help="Seconds per HTTP request.")] = 10.0,
) -> None:
    """Check a running service end to end; exits 9 when any check fails."""
    from catdog.serving.smoke import run_smoke  # noqa: PLC0415
    from catdog.terminal import console  # noqa: PLC0415

    checks = run_smoke(url, timeout_s=timeout, wait_s=wait)
    for check in checks:
        mark = "[green]ok[/]  " if check.ok else "[red]FAIL[/]"
        console.print(f"{mark} {check.name}: {check.detail}")
    failed = [c.name for c in checks if not c.ok]
    if failed:
        raise SmokeTestError(f"{len(failed)} of {len(checks)} checks failed: {', '.join(failed)}")
    console.print(f"[green]{url} works end to end[/] ({len(checks)} checks)")
