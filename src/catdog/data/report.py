"""`report.json` and the terminal summary: counts per split and class, refusals, duplicate groups.

Everything is derived from the manifest rows, so the report cannot disagree with the manifest.
It holds no timings nor run history: a rerun on the same inputs writes the same bytes.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from catdog.data.manifest import ManifestRow
from catdog.data.params import SPLITS, DataParams
from catdog.preprocess import CLASSES

REPORT_NAME = "report.json"


def build_report(rows: list[ManifestRow], params: DataParams) -> dict[str, Any]:
    """The data set in numbers: what `dvc metrics show` reads and the summary prints."""
    kept = [row for row in rows if row.status == "kept"]
    per_class = Counter(row.label for row in kept)
    splits: dict[str, dict[str, int]] = {}
    fractions: dict[str, dict[str, float]] = {}
    for split in SPLITS:
        counts = Counter(row.label for row in kept if row.split == split)
        splits[split] = {cls: counts[cls] for cls in CLASSES} | {"total": sum(counts.values())}
        fractions[split] = {
            cls: round(counts[cls] / per_class[cls], 4) if per_class[cls] else 0.0
            for cls in CLASSES
        }
    refusals = Counter(row.reason for row in rows if row.status == "refused")
    groups = _duplicate_groups(rows)
    return {
        "files": len(rows),
        "kept": len(kept),
        "refused": len(rows) - len(kept),
        "splits": splits,
        "split_fractions": fractions,
        "refusals": dict(sorted(refusals.items())),
        "duplicates": {
            "groups": len(groups),
            "exact_groups": sum(1 for group in groups if group["kind"] == "exact"),
            "near_groups": sum(1 for group in groups if group["kind"] == "near"),
            "label_conflicts": sum(1 for group in groups if group["label_conflict"]),
            "largest_group": max((len(group["members"]) for group in groups), default=0),
        },
        "split_rule": params.split.model_dump() | {"id": params.split.rule_id()},
        # Every photo refused because its group is filed under both labels, by group.
        "label_conflicts": [
            {
                "group": group["id"],
                "kind": group["kind"],
                "photos": [
                    {"source": row.source_path, "label": row.label}
                    for row in sorted(rows, key=lambda row: row.source_path)
                    if row.group == group["id"] and row.reason == "label_conflict"
                ],
            }
            for group in groups
            if group["label_conflict"]
        ],
        "duplicate_groups": groups,
    }


def _duplicate_groups(rows: list[ManifestRow]) -> list[dict[str, Any]]:
    members: dict[str, list[ManifestRow]] = {}
    for row in rows:
        if row.group:
            members.setdefault(row.group, []).append(row)
    groups = []
    for group_id, group_rows in sorted(members.items()):
        labels = sorted({row.label for row in group_rows})
        groups.append(
            {
                "id": group_id,
                "kind": "exact" if len({row.sha256 for row in group_rows}) == 1 else "near",
                "split": next((row.split for row in group_rows if row.split), ""),
                "labels": labels,
                "label_conflict": len(labels) > 1,
                "members": sorted(row.source_path for row in group_rows),
            }
        )
    return groups


def write_report(path: Path, report: dict[str, Any]) -> None:
    """Write the report as indented JSON with a final newline."""
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def summary_rows(report: dict[str, Any], *, pinned: int, moved: int) -> list[tuple[str, Any]]:
    """The few lines a person reads at the end of `catdog data prepare`."""
    rows: list[tuple[str, Any]] = [("files", report["files"]), ("kept", report["kept"])]
    rows += [(f"refused: {reason}", count) for reason, count in report["refusals"].items()]
    for split in SPLITS:
        counts = report["splits"][split]
        by_class = ", ".join(f"{cls} {counts[cls]}" for cls in CLASSES)
        rows.append((split, f"{counts['total']} ({by_class})"))
    duplicates = report["duplicates"]
    rows.append(
        (
            "duplicate groups (exact / near)",
            f"{duplicates['exact_groups']} / {duplicates['near_groups']}",
        )
    )
    rows.append(("groups with conflicting labels", duplicates["label_conflicts"]))
    if pinned:
        rows.append(("splits kept from the previous run", pinned))
    if moved:
        rows.append(("photos moved: the grouping rule changed", moved))
    return rows
