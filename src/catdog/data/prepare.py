"""The data stage: raw photos in; a checked, de-duplicated, split and resized data set out.

    check and write (parallel)  ->  exact copies  ->  near-duplicate groups  ->  splits  ->  fix up

Checking is the costly part (every file is decoded in full), so it runs in worker processes over
chunks of files; the rest works on hashes and takes a second for 25,000 photos. The new data set
is built beside `--out` and swapped in at the end: a failed run leaves the previous one intact,
and a finished one holds no stale file.
"""

from __future__ import annotations

import multiprocessing
import shutil
import sys
import time
import uuid
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catdog.data.dedup import connected_components, near_duplicate_pairs
from catdog.data.manifest import (
    MANIFEST_NAME,
    ManifestRow,
    output_path,
    read_previous_splits,
    write_manifest,
)
from catdog.data.params import DataParams
from catdog.data.report import REPORT_NAME, build_report, write_report
from catdog.data.sources import RawFile, list_files, raw_root
from catdog.data.split import SplitPlan, assign_splits
from catdog.data.validate import Checked, Checker, CheckSettings, check_chunk
from catdog.errors import DataError
from catdog.terminal import progress

# Most files per task sent to a worker: enough to amortise the hand-over (see `_chunks`).
_MAX_CHUNK = 64
_TASK = "checking photos"


@dataclass(frozen=True)
class PrepareResult:
    """What a run produced: where, the report, how long it took, what the previous run fixed."""

    out: Path
    report: dict[str, Any]
    elapsed_s: float
    pinned: int  # photos whose split the previous manifest gave
    moved: int  # photos moved to another split because the grouping rule changed

    @property
    def files_per_s(self) -> float:
        """Input files handled per second, the whole stage included."""
        return self.report["files"] / self.elapsed_s if self.elapsed_s else 0.0


def prepare_dataset(
    raw: Path, out: Path, params: DataParams, *, show_progress: bool = True
) -> PrepareResult:
    """Turn the photos of `raw` (class folders, or the Microsoft zip) into the data set in `out`."""
    started = time.perf_counter()
    raw, out = raw_root(raw.resolve()), out.resolve()
    _check_paths(raw, out)
    previous = read_previous_splits(out / MANIFEST_NAME, params.split.rule_id())
    _remove_leftovers(out)
    files = list_files(raw, exclude=out)
    if not files:
        raise DataError(f"{raw} holds no files")
    build = _new_sibling(out, "building")
    try:
        settings = CheckSettings(
            raw=raw,
            out=build,
            split=params.split,
            image_size=params.image_size,
            resample=params.resample,
            jpeg_quality=params.jpeg_quality,
            max_pixels=params.max_pixels,
            max_file_bytes=params.max_file_bytes,
        )
        checked = _check_all(files, settings, params.worker_count(), show_progress)
        rows, plan = _decide(checked, params, previous)
        _fix_up_images(rows, checked, build)
        write_manifest(build / MANIFEST_NAME, rows)
        report = build_report(rows, params)
        write_report(build / REPORT_NAME, report)
        _swap_in(build, out)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    return PrepareResult(
        out=out,
        report=report,
        elapsed_s=time.perf_counter() - started,
        pinned=plan.pinned,
        moved=len(plan.moved),
    )


def _check_paths(raw: Path, out: Path) -> None:
    if not raw.exists():
        raise DataError(f"the raw data {raw} does not exist")
    if raw.is_relative_to(out):
        raise DataError(f"--raw {raw} is inside --out {out}: the run would delete its own input")
    if not out.exists():
        return
    if not out.is_dir():
        raise DataError(f"--out {out} exists and is not a folder")
    if any(out.iterdir()) and not (out / MANIFEST_NAME).exists():
        raise DataError(
            f"--out {out} is not empty and holds no {MANIFEST_NAME}: it does not look like a "
            "catdog data set, so it is not replaced; choose another folder or empty it"
        )


def _check_all(
    files: list[RawFile], settings: CheckSettings, workers: int, show_progress: bool
) -> list[Checked]:
    """Check every file, in worker processes when there are several, keeping the input order."""
    if workers <= 1:
        return _check_here(files, settings, show_progress)
    return _check_in_workers(files, settings, workers, show_progress)


def _check_here(
    files: list[RawFile], settings: CheckSettings, show_progress: bool
) -> list[Checked]:
    checker = Checker(settings)
    results = []
    try:
        with progress() as bar:
            task = bar.add_task(_TASK, total=len(files), visible=show_progress)
            for raw_file in files:
                results.append(checker.check(raw_file))
                bar.advance(task)
    finally:
        checker.close()
    return results


def _check_in_workers(
    files: list[RawFile], settings: CheckSettings, workers: int, show_progress: bool
) -> list[Checked]:
    chunks = _chunks(files, workers)
    results: list[list[Checked]] = [[] for _ in chunks]
    # Forked workers start in milliseconds (spawned ones re-import everything, a second lost per
    # run); elsewhere than Linux, fork is unsafe or missing.
    context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            # Every worker starts at the first submit, before the progress bar starts its thread:
            # forking a process that runs threads can deadlock the children.
            futures = {
                pool.submit(check_chunk, settings, chunk): n for n, chunk in enumerate(chunks)
            }
            try:
                with progress() as bar:
                    task = bar.add_task(_TASK, total=len(files), visible=show_progress)
                    for future in as_completed(futures):
                        results[futures[future]] = future.result()
                        bar.advance(task, len(results[futures[future]]))
            except BaseException:  # Ctrl-C or a failed chunk: do not wait for the others
                pool.shutdown(cancel_futures=True)
                raise
    except BrokenProcessPool as exc:
        raise DataError(f"a worker process died (out of memory?): {exc}") from exc
    return [checked for chunk in results for checked in chunk]


def _chunks(files: list[RawFile], workers: int) -> list[list[RawFile]]:
    """Chunks that shrink as the work left does (guided scheduling): with equal chunks to the end,
    one worker sat idle for the last chunk of the other, 0.25 s of a 16 s run."""
    chunks = []
    start = 0
    while start < len(files):
        size = max(1, min(_MAX_CHUNK, (len(files) - start) // (workers * 4)))
        chunks.append(files[start : start + size])
        start += size
    return chunks


def _decide(
    checked: list[Checked], params: DataParams, previous: dict[str, str]
) -> tuple[list[ManifestRow], SplitPlan]:
    """Keep one copy of each exact duplicate, group near-duplicates, refuse groups filed under
    both labels, split the rest, and write a row each."""
    copies: dict[str, list[Checked]] = {}
    for item in checked:  # in source-path order, so the first copy is the one kept
        if item.ok:
            copies.setdefault(item.sha256, []).append(item)
    kept = [group[0] for group in copies.values()]
    hashes = [item.phash or 0 for item in kept]
    pairs = [
        (kept[i].sha256, kept[j].sha256)
        for i, j in near_duplicate_pairs(hashes, params.near_duplicate_distance)
    ]
    groups = connected_components(copies, pairs)
    # The same photo filed as a cat and as a dog: no label can be trusted, so none is guessed.
    conflicted: dict[str, list[Checked]] = {}
    for group in groups:
        members = [item for sha in group for item in copies[sha]]
        if len({item.label for item in members}) > 1:
            conflicted.update(dict.fromkeys(group, members))
    _check_conflicts(conflicted, len(checked), params)
    plan = assign_splits(
        (item.sha256 for item in kept if item.sha256 not in conflicted),
        [pair for pair in pairs if pair[0] not in conflicted and pair[1] not in conflicted],
        params.split,
        previous,
    )
    group_of: dict[str, str] = {}
    for group in groups:
        if len(group) > 1 or len(copies[group[0]]) > 1:
            group_of.update(dict.fromkeys(group, f"g{group[0][:12]}"))
    rule_id = params.split.rule_id()
    rows = []
    for item in checked:
        group_id = group_of.get(item.sha256, "")
        if not item.ok:
            rows.append(_row(item, group_id, reason=item.reason or "", detail=item.detail))
            continue
        first = copies[item.sha256][0]
        if item.sha256 in conflicted:
            others = ", ".join(
                f"{other.source} ({other.label})"
                for other in conflicted[item.sha256]
                if other is not item
            )
            detail = f"its copies are filed under both labels: {others}"
            rows.append(_row(item, group_id, reason="label_conflict", detail=detail))
        elif item is not first:
            detail = f"same bytes as {first.source}"
            rows.append(_row(item, group_id, reason="duplicate", detail=detail))
        elif item.sha256 in plan.conflicts:
            splits = " and ".join(plan.conflicts[item.sha256])
            detail = f"near-duplicate of photos in {splits}: keeping it would leak between them"
            rows.append(_row(item, group_id, reason="split_conflict", detail=detail))
        else:
            rows.append(_row(item, group_id, split=plan.splits[item.sha256], split_rule=rule_id))
    return rows, plan


def _check_conflicts(conflicted: dict[str, list[Checked]], files: int, params: DataParams) -> None:
    """Fail the stage when more photos than `data.max_label_conflict_fraction` of the files are
    in label conflicts: that many means mislabelled folders, not a few stray copies."""
    photos = {item.source: item for members in conflicted.values() for item in members}
    if files and len(photos) / files > params.max_label_conflict_fraction:
        shown = ", ".join(f"{source} ({item.label})" for source, item in sorted(photos.items())[:6])
        raise DataError(
            f"{len(photos)} of {files} files are copies or near-copies filed under both labels, "
            f"more than data.max_label_conflict_fraction = {params.max_label_conflict_fraction:g}"
            f" allows (for example {shown}); fix the class folders, or raise the limit to "
            "refuse them all as label_conflict and list them in report.json",
            reason="label_conflicts",
        )


def _row(
    item: Checked,
    group_id: str,
    *,
    reason: str = "",
    detail: str = "",
    split: str = "",
    split_rule: str = "",
) -> ManifestRow:
    """The manifest row of `item`: kept when it is given a split, else refused for `reason`."""
    return ManifestRow(
        source_path=item.source,
        sha256=item.sha256,
        label=item.label or "",
        split=split,
        width=item.width,
        height=item.height,
        status="kept" if split else "refused",
        reason=reason,
        detail=detail,
        group=group_id,
        phash="" if item.phash is None else f"{item.phash:016x}",
        output_path=output_path(split, item.label or "", item.sha256) if split else "",
        split_rule=split_rule,
    )


def _fix_up_images(rows: list[ManifestRow], checked: list[Checked], build: Path) -> None:
    """Workers wrote each photo into the split of its own hash: move the few whose near-duplicate
    group (or the previous manifest) put them in another split, and delete the files of photos
    refused after checking (an exact copy in another class folder, a split conflict)."""
    left = {item.written for item in checked if item.written}
    for row, item in zip(rows, checked, strict=True):
        if row.status == "kept":
            left.discard(item.written)
            if item.written != row.output_path:
                (build / item.written).rename(build / row.output_path)
    for path in left:  # files no kept photo owns (a same-class exact copy shares the kept one's)
        (build / path).unlink()


def _new_sibling(out: Path, purpose: str) -> Path:
    """A new hidden folder beside `out` (same file system, so renames are atomic)."""
    folder = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.{purpose}")
    folder.mkdir(parents=True)
    return folder


def _remove_leftovers(out: Path) -> None:
    """Delete what a killed run left beside `out`, before it could be mistaken for input."""
    if out.parent.is_dir():
        for purpose in ("building", "old"):
            for folder in out.parent.glob(f".{out.name}.*.{purpose}"):
                shutil.rmtree(folder)


def _swap_in(build: Path, out: Path) -> None:
    """Replace `out` by the finished `build`, keeping the old one until the new one is in place."""
    if not out.exists():
        build.rename(out)
        return
    retired = _new_sibling(out, "old")
    out.rename(retired / out.name)
    build.rename(out)
    shutil.rmtree(retired)
