"""`catdog data ...` commands: parse the options, run the data stage, print its summary.

Only light modules are imported at the top; the stage itself (Pillow, NumPy) and urllib are
imported inside the commands, so that `catdog --help` stays fast.
"""

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from catdog.data.params import DataParams
from catdog.errors import ConfigError
from catdog.params import DEFAULT_PARAMS, load_section
from catdog.terminal import summary_table

# `catdog data download --source`: the Microsoft zip, by its pinned URL, size and SHA-256.
MICROSOFT = "microsoft"

app = typer.Typer(help="Validate, normalise, de-duplicate and split photos.", no_args_is_help=True)


@app.command()
def prepare(
    raw: Annotated[
        Path,
        typer.Option(
            "--raw", help="Folder with cat/ and dog/ sub-folders (any depth, any case), or a zip."
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Output folder; replaced by the new data set.")
    ],
    image_size: Annotated[
        int | None, typer.Option("--image-size", help="Side of the square output photos.")
    ] = None,
    params: Annotated[
        Path | None,
        typer.Option(
            "--params", help="Parameters file, its `data:` section (default: params.yaml)."
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", help="Worker processes; 0 means every core.")
    ] = None,
) -> None:
    """Check every photo, drop exact copies, group near-duplicates, split 80/10/10, resize."""
    from catdog.data.prepare import prepare_dataset  # noqa: PLC0415 - Pillow and NumPy
    from catdog.data.report import summary_rows  # noqa: PLC0415

    if params is not None and not params.is_file():
        raise ConfigError(f"the parameters file {params} does not exist")
    settings = load_section(params or DEFAULT_PARAMS, "data", DataParams)
    overrides = {"image_size": image_size, "workers": workers}
    try:
        settings = DataParams.model_validate(
            settings.model_dump() | {k: v for k, v in overrides.items() if v is not None}
        )
    except ValidationError as exc:
        raise ConfigError(str(exc)) from exc
    result = prepare_dataset(raw, out, settings)
    rows = summary_rows(result.report, pinned=result.pinned, moved=result.moved)
    rows.append(("output", str(out)))
    rows.append(("time", f"{result.elapsed_s:.1f} s ({result.files_per_s:,.0f} files/s)"))
    summary_table("catdog data prepare", rows)


@app.command()
def download(
    dest: Annotated[Path, typer.Option("--dest", help="Folder to download into.")] = Path(
        "data/raw"
    ),
    url: Annotated[str | None, typer.Option("--url", help="Override the URL (a mirror).")] = None,
    sha256: Annotated[
        str | None, typer.Option("--sha256", help="Override the expected SHA-256.")
    ] = None,
    size: Annotated[
        int | None, typer.Option("--size", help="Override the expected size in bytes.")
    ] = None,
    source: Annotated[
        str,
        typer.Option(
            "--source",
            help="`microsoft` (the zip), or a local folder or zip to copy instead (the "
            "pipeline's demo copies samples/petimages).",
        ),
    ] = MICROSOFT,
) -> None:
    """Fetch the Microsoft "Kaggle Cats and Dogs Dataset" zip: resumable, verified."""
    from catdog.data.download import (  # noqa: PLC0415 - urllib and ssl: only when downloading
        KAGGLE_CATS_AND_DOGS,
        copy_local,
        download_file,
    )

    if source != MICROSOFT:
        copied = copy_local(Path(source), dest)
        summary_table(
            "catdog data download",
            [
                ("copied", source),
                ("to", str(copied)),
                ("next", f"catdog data prepare --raw {dest}"),
            ],
        )
        return
    remote = KAGGLE_CATS_AND_DOGS
    if url is not None:
        remote = replace(remote, url=url)
    if sha256 is not None:
        remote = replace(remote, sha256=sha256.lower())
    if size is not None:
        remote = replace(remote, size=size)
    path = download_file(remote, dest)
    summary_table(
        "catdog data download",
        [
            ("file", str(path)),
            ("bytes", f"{remote.size:,}"),
            ("sha256", remote.sha256),
            ("next", f"catdog data prepare --raw {path} --out data/prepared"),
        ],
    )
