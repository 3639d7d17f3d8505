"""Data stage speed: `catdog data prepare` against the plain single-process way, on the same photos.

Plain way: open, convert to RGB, LANCZOS resize to 224, save as JPEG, one file after another.
catdog: the whole stage (every file decoded in full, EXIF, validation, sha256, perceptual hashes,
exact and near de-duplication, split, manifest, report) in worker processes, at the same 224.

    python benchmarks/prepare_benchmark.py                          # the 8,000 of petimages-8k
    python benchmarks/prepare_benchmark.py --raw samples/petimages --limit 100      # quick check

Both read the same files, from the page cache (they are read once before timing), and write to
the same scratch folder, by default under data/ where the stage writes in real use. Prints the
figures and writes them to benchmarks/results/prepare.json.

Creating a file is not a fixed cost. On ext4 without a journal (the disk of the machines this
project is built on), allocating an inode skips, one by one, every inode of its block group freed
in the last one to six minutes: after a run deletes its 16,000 outputs, each new file costs up to
a millisecond of kernel time instead of about 20 us, for both ways alike, which pulls the ratio
towards the core count. So the benchmark first waits (bounded by --settle) until creating a file
is cheap again, deletes nothing before it has timed both ways, and records what it measured. It
also flushes what the previous run wrote before timing the next, so that neither way pays for the
other's writeback.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import PIL
from PIL import Image

from catdog.data.params import DataParams
from catdog.data.prepare import prepare_dataset
from catdog.data.sources import label_for_path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_RAW = REPO.parent / "shared" / "datasets" / "petimages-8k"
DEFAULT_OUTPUT = REPO / "benchmarks" / "results" / "prepare.json"
DEFAULT_SCRATCH = REPO / "data" / "benchmark"
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png"}
# Creating a file costs about 20 us on a settled disk; above this, freed inodes are still skipped.
CHEAP_CREATE_US = 100.0


def find_photos(raw: Path, limit: int) -> list[Path]:
    """Photos in class folders under `raw`, spread evenly over the sorted list when limited."""
    photos = sorted(
        path
        for path in raw.rglob("*")
        if path.suffix.lower() in PHOTO_SUFFIXES and label_for_path(path.relative_to(raw))
    )
    if limit and limit < len(photos):
        step = len(photos) / limit
        photos = [photos[int(i * step)] for i in range(limit)]
    return photos


def plain_way(photos: list[Path], out: Path, size: int) -> float:
    """Seconds to open, convert, LANCZOS-resize and save each photo in this one process."""
    out.mkdir()
    started = time.perf_counter()
    for number, path in enumerate(photos):
        with Image.open(path) as image:
            resized = image.convert("RGB").resize((size, size), Image.Resampling.LANCZOS)
        resized.save(out / f"{number}.jpg")
    return time.perf_counter() - started


def catdog_way(raw: Path, out: Path, params: DataParams) -> tuple[float, dict[str, Any]]:
    """Seconds for the whole data stage through its Python API, and its report."""
    started = time.perf_counter()
    result = prepare_dataset(raw, out, params, show_progress=False)
    return time.perf_counter() - started, result.report


def file_create_us(folder: Path, count: int = 100) -> float:
    """Microseconds to create one empty file in `folder`. The files stay: deleting them would
    itself make the next files dearer (see the module's docstring)."""
    folder.mkdir(parents=True, exist_ok=True)
    first = sum(1 for _ in folder.iterdir())
    started = time.perf_counter()
    for number in range(first, first + count):
        (folder / f"{number}.jpg").touch()
    return (time.perf_counter() - started) / count * 1e6


def settle(folder: Path, limit_s: float, cheap_us: float = CHEAP_CREATE_US) -> tuple[float, float]:
    """Wait, at most `limit_s`, until creating a file in `folder` costs under `cheap_us`.
    Returns the last cost measured and the seconds waited."""
    started = time.monotonic()
    cost = file_create_us(folder)
    while cost > cheap_us and time.monotonic() - started < limit_s:
        time.sleep(min(15.0, max(0.0, limit_s - (time.monotonic() - started))))
        cost = file_create_us(folder)
    return cost, time.monotonic() - started


def link_subset(photos: list[Path], raw: Path, subset: Path) -> None:
    """The chosen photos as symlinks in their class folders, so both ways see the same files."""
    for path in photos:
        link = subset / path.relative_to(raw)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(path)
        path.read_bytes()  # into the page cache, for both ways alike


def main(argv: list[str] | None = None) -> int:
    """Run both ways, print photos/s and the ratio, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--raw", type=Path, default=DEFAULT_RAW, help="class-folder data set")
    parser.add_argument("--limit", type=int, default=0, help="use N photos (0: all)")
    parser.add_argument("--size", type=int, default=224, help="output side, both ways")
    parser.add_argument("--workers", type=int, default=0, help="catdog workers (0: all cores)")
    parser.add_argument(
        "--resample", default=None, help="catdog resampling (default: the data stage's default)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs of each way; best is kept")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON results file")
    parser.add_argument("--scratch", type=Path, default=DEFAULT_SCRATCH, help="working folder")
    parser.add_argument(
        "--settle",
        type=float,
        default=420.0,
        help="seconds to wait at most for file creation to be cheap again (0: do not wait)",
    )
    args = parser.parse_args(argv)
    if not args.raw.is_dir():
        parser.error(f"{args.raw} is not a folder (try --raw samples/petimages)")
    photos = find_photos(args.raw.resolve(), args.limit)
    if not photos:
        parser.error(f"no photos in class folders under {args.raw}")
    chosen = {"resample": args.resample} if args.resample else {}
    params = DataParams(image_size=args.size, workers=args.workers, **chosen)
    load_before = os.getloadavg()
    plain_s, catdog_s = [], []
    args.scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="prepare-", dir=args.scratch) as tmp:
        create_us, waited_s = settle(Path(tmp) / "probe", args.settle)
        if create_us > CHEAP_CREATE_US:
            print(f"warning: creating a file still costs {create_us:.0f} us after {waited_s:.0f} s")
        subset = Path(tmp) / "raw"
        link_subset(photos, args.raw.resolve(), subset)
        for run in range(args.repeat):
            # Each way starts with no dirty pages of the other's output: written back during the
            # next timed run, they would cost it kernel time on these same cores.
            os.sync()
            plain_s.append(plain_way(photos, Path(tmp) / f"plain-{run}", args.size))
            os.sync()
            seconds, report = catdog_way(subset, Path(tmp) / f"prepared-{run}", params)
            catdog_s.append(seconds)
    count = len(photos)
    plain_rate, catdog_rate = count / min(plain_s), count / min(catdog_s)
    results = {
        "benchmark": "data prepare vs plain single-process resize",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(
            [Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]
        ),
        "raw": os.path.relpath(args.raw, REPO),
        "scratch": os.path.relpath(args.scratch, REPO),
        "photos": count,
        "size": args.size,
        "repeat": args.repeat,
        "cpu_count": os.cpu_count(),
        "workers": params.worker_count(),
        "resample": params.resample,
        "jpeg_quality": params.jpeg_quality,
        "load_average_before": [round(load, 2) for load in load_before],
        "file_create_us": round(create_us),
        "settled_after_s": round(waited_s),
        "python": platform.python_version(),
        "pillow": PIL.__version__,
        "plain": {"seconds": [round(s, 3) for s in plain_s], "photos_per_s": round(plain_rate, 1)},
        "catdog": {
            "seconds": [round(s, 3) for s in catdog_s],
            "photos_per_s": round(catdog_rate, 1),
            "kept": report["kept"],
            "refused": report["refused"],
            "duplicate_groups": report["duplicates"]["groups"],
        },
        "speedup": round(catdog_rate / plain_rate, 2),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"{count} photos at {args.size}x{args.size}, {results['workers']} workers")
    print(f"plain single-process  {plain_rate:8.1f} photos/s")
    print(f"catdog data prepare   {catdog_rate:8.1f} photos/s  (whole stage)")
    print(f"speedup               {results['speedup']:8.2f}x")
    print(f"creating a file in {args.scratch}: {create_us:.0f} us")
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
