"""`catdog evaluate`, `catdog export` and `catdog promote`: parse options, call the stage, report.

Only light modules are imported here; torch, ONNX Runtime and MLflow are imported inside each
command so that `catdog --help` stays fast. Machine-readable JSON goes to stdout, progress and
summary tables to stderr.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from catdog.errors import ConfigError
from catdog.model_store import model_line
from catdog.params import DEFAULT_PARAMS

ParamsOption = Annotated[
    Path, typer.Option("--params", help="Parameters file (params.yaml, DVC's convention).")
]


def _params_file(path: Path) -> Path:
    """An explicit params file must exist; a missing default params.yaml means all defaults."""
    if path != DEFAULT_PARAMS and not path.is_file():
        raise ConfigError(f"the parameters file {path} does not exist")
    return path


def _emit(report: dict[str, Any], out: Path | None) -> None:
    """JSON to stdout, and to `out` when given (DVC reads metrics from that file)."""
    text = json.dumps(report, indent=2)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n", encoding="utf-8")
    typer.echo(text)


def evaluate(
    *,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="An ONNX file or export folder (models/model.onnx), a `.pt` checkpoint (scored "
            "in PyTorch), or a registry URI such as models:/catdog@champion. Default: the "
            "bundled reference model.",
        ),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="Any folder (or zip) of class sub-folders: cat/cats/Cat, dog/dogs/Dog at any "
            "depth; raw photos of any size. Default: `evaluate.data` in params.yaml.",
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Also write the JSON report to this file.")
    ] = None,
    plots: Annotated[
        Path | None,
        typer.Option(
            "--plots", help="Write predictions.csv and roc.csv here, for `dvc plots show`."
        ),
    ] = None,
    params: ParamsOption = DEFAULT_PARAMS,
) -> None:
    """Score a model on a class-folder dataset; print the metrics as JSON.

    Accuracy, precision, recall, F1, ROC AUC, log loss, confusion matrix and count.

    Photos that cannot be decoded are listed as refused, with their reason.
    """
    from catdog.params import load_section  # noqa: PLC0415
    from catdog.terminal import console, summary_table  # noqa: PLC0415
    from catdog.training.evaluate import (  # noqa: PLC0415
        EvaluateParams,
        evaluate_model,
        write_plots,
    )

    settings = load_section(_params_file(params), "evaluate", EvaluateParams)
    data_dir = data or settings.data
    evaluation, described = evaluate_model(
        model, data_dir, batch_size=settings.batch_size, raw=settings.raw
    )
    console.print(model_line(described), highlight=False, soft_wrap=True)
    report = evaluation.to_json(model=described, data=str(data_dir))
    if plots is not None:
        write_plots(evaluation, plots)
    summary_table(
        "catdog evaluate",
        [("model", f"{described['name']} {described['version']} ({described['runtime']})")]
        + [(key, report[key]) for key in ("count", "accuracy", "f1", "roc_auc", "log_loss")]
        + [("refused", report["refused_count"]), ("data", str(data_dir))],
    )
    _emit(report, out)


def export(
    *,
    checkpoint: Annotated[
        Path, typer.Option("--checkpoint", help="The checkpoint `catdog train` wrote.")
    ] = Path("models/checkpoint.pt"),
    out: Annotated[
        Path, typer.Option("--out", help="Folder for model.onnx, model.int8.onnx and their cards.")
    ] = Path("models"),
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            help="Class-folder photos for the parity check; when split (train/, val/, test/), "
            "int8 is calibrated on train/, judged on val/ and reported on test/.",
        ),
    ] = Path("data/prepared"),
    quantize: Annotated[
        bool | None,
        typer.Option(
            "--quantize/--no-quantize",
            help="Try int8 (kept only on evidence that it is not worse, see params.yaml). "
            "Default: `export.quantize` in params.yaml.",
        ),
    ] = None,
    register: Annotated[
        bool,
        typer.Option(
            "--register/--no-register",
            help="Register the export as a new version of `export.registered_model` in MLflow, "
            "in the checkpoint's training run when the tracking store has it.",
        ),
    ] = True,
    params: ParamsOption = DEFAULT_PARAMS,
) -> None:
    """Export a checkpoint to ONNX, checked against PyTorch, with a model card.

    The batch axis is dynamic and parity with PyTorch is checked on real photos.

    int8 is optional, and kept only when the selection split shows it is not worse.

    Each export registers a new, immutable MLflow model version holding the ONNX file and card.
    """
    from catdog.params import load_section  # noqa: PLC0415
    from catdog.terminal import summary_table  # noqa: PLC0415
    from catdog.training.export import ExportParams, export_checkpoint  # noqa: PLC0415

    settings = load_section(_params_file(params), "export", ExportParams)
    if quantize is not None:
        settings = settings.model_copy(update={"quantize": quantize})
    result = export_checkpoint(checkpoint, out, data, settings, register=register)
    card = result.card
    test = card.metrics["test"]
    summary_table(
        "catdog export",
        [
            ("model", str(result.onnx_path)),
            ("version", card.version),
            ("architecture", card.architecture),
            ("input size", card.input_size),
            ("GFLOPs / image (2 x MACs)", card.gflops),
            ("parameters", card.parameters),
            ("size (MB)", card.onnx_bytes / 1e6),
            ("parity max |Δp|", f"{card.parity_max_abs_diff:.2e} on {card.parity_photos} photos"),
            ("test accuracy", test["accuracy"]),
            ("int8", card.quantization.reason),
            ("int8 model", str(result.int8_path) if result.int8_path else "-"),
            ("registered", result.registered.uri if result.registered else "-"),
            ("MLflow run", result.registered.run_id if result.registered else "-"),
        ],
    )


def promote(
    *,
    version: Annotated[
        str | None,
        typer.Option("--version", help="Registered version to judge. Default: the newest."),
    ] = None,
    registration: Annotated[
        Path | None,
        typer.Option(
            "--registration",
            help="Judge the version an export registered, as its registration.json names it "
            "(what the pipeline's promote stage does).",
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Also write the JSON decision to this file.")
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="Selection split both models are scored on (not the final test split). "
            "Default: `promote.data` (data/prepared/val).",
        ),
    ] = None,
    params: ParamsOption = DEFAULT_PARAMS,
) -> None:
    """Move `champion` to a version that beats the current one on evidence, else `challenger`.

    Both are scored on the selection split; the rule in the `promote:` section of params.yaml
    needs enough photos, a significant exact McNemar test on the photos the two disagree on, and
    a minimum accuracy margin. Too few photos: no decision, and the reason.

    The command prints why, and tags the version with the comparison.
    """
    from catdog.params import load_section  # noqa: PLC0415
    from catdog.terminal import console, summary_table  # noqa: PLC0415
    from catdog.training.registry import PromoteParams, read_registration  # noqa: PLC0415
    from catdog.training.registry import promote as promote_version  # noqa: PLC0415

    rule = load_section(_params_file(params), "promote", PromoteParams)
    if data is not None:
        rule = rule.model_copy(update={"data": data})
    if registration is not None:
        if version is not None:
            raise ConfigError("give --version or --registration, not both")
        name, version = read_registration(registration)
        rule = rule.model_copy(update={"model_name": name})
    result = promote_version(rule, version=version)
    for described in result.models.values():
        console.print(model_line(described), highlight=False, soft_wrap=True)
    champion = result.previous_champion
    summary_table(
        "catdog promote",
        [
            ("decision", f"{result.name} v{result.version} -> {result.alias}"),
            ("candidate accuracy", result.candidate_scores["accuracy"]),
            ("candidate log loss", result.candidate_scores["log_loss"]),
            ("previous champion", f"v{champion}" if champion else "none"),
            *(
                [
                    ("champion accuracy", result.champion_scores["accuracy"]),
                    ("champion log loss", result.champion_scores["log_loss"]),
                ]
                if result.champion_scores
                else []
            ),
            ("selection photos", result.candidate_scores["count"]),
        ],
    )
    for reason in result.decision.reasons:
        console.print(f"  {reason}")
    _emit(
        {
            "name": result.name,
            "version": result.version,
            "alias": result.alias,
            "promoted": result.decision.promote,
            "decided": result.decision.decided,
            "models": result.models,
            "comparison": None
            if result.comparison is None
            else {
                "photos": result.comparison.photos,
                "disagreements": result.comparison.disagreements,
                "candidate_only": result.comparison.candidate_only,
                "champion_only": result.comparison.baseline_only,
                "p_value": result.comparison.p_better(),
            },
            "previous_champion": champion,
            "reasons": result.decision.reasons,
            "candidate": result.candidate_scores,
            "champion": result.champion_scores,
            "data": str(rule.data),
        },
        out,
    )
