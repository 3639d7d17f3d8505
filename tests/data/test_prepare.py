"""The whole data stage on real photos: nothing dropped, copies grouped, reruns clean and stable."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import zipfile
from pathlib import Path

import pytest
from petfiles import SAMPLE, MakeRaw, hamming, stage_phash
from PIL import Image

from catdog.data import prepare as prepare_module
from catdog.data.manifest import MANIFEST_COLUMNS, REFUSAL_REASONS
from catdog.data.params import SPLITS, DataParams, SplitParams
from catdog.data.prepare import prepare_dataset
from catdog.data.sources import RawFile
from catdog.data.split import bucket
from catdog.errors import DataError


def read_manifest(out: Path) -> list[dict[str, str]]:
    with (out / "manifest.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def kept_splits(out: Path) -> dict[str, str]:
    return {row["sha256"]: row["split"] for row in read_manifest(out) if row["status"] == "kept"}


def files_under(folder: Path) -> set[str]:
    return {path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()}


def assert_only_kept_photos_written(out: Path) -> None:
    """The data set holds exactly its kept photos, each at its split and class, and nothing else:
    a photo moved with its group, or refused after it was written, leaves no file behind."""
    kept = [row for row in read_manifest(out) if row["status"] == "kept"]
    for row in kept:
        assert row["output_path"] == f"{row['split']}/{row['label']}/{row['sha256']}.jpg"
    outputs = {row["output_path"] for row in kept}
    assert files_under(out) == {"manifest.csv", "report.json"} | outputs


def jpeg(data: bytes, quality: int, *, trim: int = 0) -> bytes:
    """The photo re-encoded at `quality`, less `trim` pixel columns on the left."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    buffer = io.BytesIO()
    image.crop((trim, 0, image.width, image.height)).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def test_sample_end_to_end_in_worker_processes(tmp_path: Path) -> None:
    out = tmp_path / "prepared"
    result = prepare_dataset(SAMPLE, out, DataParams(image_size=64, workers=2), show_progress=False)
    rows = read_manifest(out)
    assert tuple(rows[0]) == MANIFEST_COLUMNS
    assert len(rows) == 202  # 200 photos, the README and the checksums: nothing left out
    refused = {row["source_path"]: row["reason"] for row in rows if row["status"] == "refused"}
    assert refused == {"README.md": "no_label", "SHA256SUMS": "no_label"}
    # The manifest's hashes are the published ones.
    published = dict(
        reversed(line.split("  ")) for line in (SAMPLE / "SHA256SUMS").read_text().splitlines()
    )
    kept = [row for row in rows if row["status"] == "kept"]
    assert {row["source_path"]: row["sha256"] for row in kept} == published
    # Exactly the kept photos are written, in their split and class, RGB at the asked size.
    assert_only_kept_photos_written(out)
    for row in kept[::25]:
        with Image.open(out / row["output_path"]) as image:
            assert (image.mode, image.size) == ("RGB", (64, 64))
    report = json.loads((out / "report.json").read_text())
    assert report == result.report
    assert (report["files"], report["kept"], report["refused"]) == (202, 200, 2)
    for split in SPLITS:
        for label in ("cat", "dog"):
            count = sum(1 for row in kept if (row["split"], row["label"]) == (split, label))
            assert report["splits"][split][label] == count
    # Same photos in one process: the same data set, byte for byte.
    single = tmp_path / "single"
    prepare_dataset(SAMPLE, single, DataParams(image_size=64, workers=1), show_progress=False)
    assert (single / "manifest.csv").read_bytes() == (out / "manifest.csv").read_bytes()


def test_awkward_collection_every_file_accounted_for(
    tmp_path: Path,
    make_raw: MakeRaw,
    sample_photos: list[Path],
    refused_files: dict[str, tuple[bytes, str]],
    awkward_photos: dict[str, bytes],
) -> None:
    raw = make_raw(sample_photos[:10] + sample_photos[100:110])
    cats, dogs = raw / "PetImages" / "Cat", raw / "PetImages" / "Dog"
    for name, (data, _) in refused_files.items():
        (dogs / name).write_bytes(data)
    for name, data in awkward_photos.items():
        (cats / name).write_bytes(data)
    (raw / "PetImages" / "readme[1].txt").write_text("Microsoft Kaggle Cats and Dogs")
    (raw / "MSR-LA - 3467.docx").write_bytes(b"PK\x03\x04 licence")
    original = sample_photos[5]
    shutil.copyfile(original, dogs / "copied_into_dogs.jpg")  # exact copy, other label
    (cats / "reencoded.jpg").write_bytes(jpeg(original.read_bytes(), 60))  # near copy
    written = files_under(raw)

    out = tmp_path / "prepared"
    params = DataParams(image_size=64, workers=1, max_label_conflict_fraction=0.1)
    report = prepare_dataset(raw, out, params).report
    rows = {row["source_path"]: row for row in read_manifest(out)}
    assert set(rows) == written  # every input file has its row
    for name, (_, reason) in refused_files.items():
        assert rows[f"PetImages/Dog/{name}"]["reason"] == reason
    for name in awkward_photos:
        assert rows[f"PetImages/Cat/{name}"]["status"] == "kept"
    assert rows["PetImages/readme[1].txt"]["reason"] == "no_label"
    assert rows["MSR-LA - 3467.docx"]["reason"] == "no_label"
    for row in rows.values():
        assert row["status"] in {"kept", "refused"}
        assert (row["status"] == "refused") == (row["reason"] in REFUSAL_REASONS)

    # A photo, its exact copy filed as a dog and its re-encoded near copy: no label is trusted.
    first = rows[f"PetImages/Cat/{original.name}"]
    exact = rows["PetImages/Dog/copied_into_dogs.jpg"]
    near = rows["PetImages/Cat/reencoded.jpg"]
    for row in (first, exact, near):
        assert (row["status"], row["reason"], row["split"]) == ("refused", "label_conflict", "")
    assert "PetImages/Dog/copied_into_dogs.jpg (dog)" in first["detail"]
    assert f"PetImages/Cat/{original.name} (cat)" in exact["detail"]
    assert first["group"] == near["group"] == exact["group"] != ""
    group = next(g for g in report["duplicate_groups"] if g["id"] == near["group"])
    assert group["label_conflict"] and group["labels"] == ["cat", "dog"]
    assert group["kind"] == "near" and len(group["members"]) == 3
    assert report["duplicates"]["label_conflicts"] == 1
    (listed,) = report["label_conflicts"]
    assert listed["group"] == group["id"]
    assert {photo["source"] for photo in listed["photos"]} == set(group["members"])
    assert_only_kept_photos_written(out)  # the copy written into dog/ is gone

    refusals: dict[str, int] = {}
    for row in rows.values():
        if row["status"] == "refused":
            refusals[row["reason"]] = refusals.get(row["reason"], 0) + 1
    assert report["refusals"] == refusals
    assert report["files"] == len(written)


def test_rerun_is_idempotent_and_leaves_nothing_stale(
    tmp_path: Path, make_raw: MakeRaw, sample_photos: list[Path], fast_params: DataParams
) -> None:
    raw = make_raw(sample_photos[::10])
    out = tmp_path / "prepared"
    prepare_dataset(raw, out, fast_params, show_progress=False)
    first = {name: (out / name).read_bytes() for name in files_under(out)}
    (out / "train" / "cat" / "stale.jpg").write_bytes(b"from an older run")
    (out / "notes.txt").write_text("left by hand")
    prepare_dataset(raw, out, fast_params, show_progress=False)
    assert {name: (out / name).read_bytes() for name in files_under(out)} == first
    assert sorted(path.name for path in tmp_path.iterdir()) == ["prepared", "raw"]


def test_zip_gives_the_same_data_set_as_the_folder(
    tmp_path: Path, make_raw: MakeRaw, sample_photos: list[Path], fast_params: DataParams
) -> None:
    raw = make_raw(sample_photos[::8])
    (raw / "PetImages" / "Cat" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0" + b"\0" * 64)
    archive = tmp_path / "kagglecatsanddogs.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(raw.rglob("*")):
            zf.write(path, path.relative_to(raw).as_posix())
    prepare_dataset(raw, tmp_path / "from_folder", fast_params, show_progress=False)
    # In worker processes: each opens the archive once for all its chunks.
    in_workers = fast_params.model_copy(update={"workers": 2})
    prepare_dataset(archive, tmp_path / "from_zip", in_workers, show_progress=False)
    assert kept_splits(tmp_path / "from_zip") == kept_splits(tmp_path / "from_folder")
    zip_rows = read_manifest(tmp_path / "from_zip")
    assert len(zip_rows) == len(sample_photos[::8]) + 1
    assert files_under(tmp_path / "from_zip") == files_under(tmp_path / "from_folder")


def test_a_new_copy_joining_a_group_does_not_move_it(
    tmp_path: Path, make_raw: MakeRaw, sample_photos: list[Path], fast_params: DataParams
) -> None:
    raw = make_raw(sample_photos[:40] + sample_photos[100:140])
    out = tmp_path / "prepared"
    prepare_dataset(raw, out, fast_params, show_progress=False)
    before = kept_splits(out)

    # A re-encoded copy whose sha256 sorts first and whose hash falls in another split: a rule
    # keyed on the group's smallest sha256 alone would move the original.
    rule = fast_params.split
    original = sample_photos[3].read_bytes()
    original_sha = read_sha(out, f"PetImages/Cat/{sample_photos[3].name}")
    copy = next(
        data
        for data in (jpeg(original, quality) for quality in range(50, 100))
        if sha256(data) < original_sha and bucket(sha256(data), rule) != before[original_sha]
    )
    (raw / "PetImages" / "Cat" / "copy.jpg").write_bytes(copy)
    for photo in sample_photos[60:70]:
        shutil.copyfile(photo, raw / "PetImages" / "Cat" / photo.name)

    result = prepare_dataset(raw, out, fast_params, show_progress=False)
    after = kept_splits(out)
    assert {sha: after[sha] for sha in before} == before
    assert after[sha256(copy)] == before[original_sha]
    assert (result.pinned, result.moved) == (len(before), 0)
    assert_only_kept_photos_written(out)  # the copy's file followed its group
    # Without the previous manifest the group would have moved: the case above is a real one.
    fresh = tmp_path / "fresh"
    prepare_dataset(raw, fresh, fast_params, show_progress=False)
    assert kept_splits(fresh)[original_sha] != before[original_sha]
    assert_only_kept_photos_written(fresh)


def test_a_new_photo_bridging_two_splits_is_refused_and_leaves_no_file(
    tmp_path: Path, make_raw: MakeRaw, sample_photos: list[Path], fast_params: DataParams
) -> None:
    # First run: two copies of one photo, in different splits, not grouped (distance 0): a copy
    # a few pixels narrower, whose perceptual hash differs from the original's by a few bits.
    rule, near = fast_params.split, fast_params.near_duplicate_distance
    original = sample_photos[7].read_bytes()
    first_copy = next(
        data
        for data in (
            jpeg(original, quality, trim=pixels)
            for pixels in range(1, 16)
            for quality in range(50, 100)
        )
        if bucket(sha256(data), rule) != bucket(sha256(original), rule)
        and 0 < hamming(stage_phash(data, fast_params), stage_phash(original, fast_params)) <= near
    )
    raw = make_raw(sample_photos[:20])
    (raw / "PetImages" / "Cat" / "first_copy.jpg").write_bytes(first_copy)
    out = tmp_path / "prepared"
    apart = fast_params.model_copy(update={"near_duplicate_distance": 0})
    prepare_dataset(raw, out, apart, show_progress=False)
    before = kept_splits(out)
    assert before[sha256(first_copy)] != before[sha256(original)]

    # Second run groups near copies: a new copy joins both, so it would leak one split into the
    # other; the old two end up together, one of them moved out of its split.
    (raw / "PetImages" / "Cat" / "second_copy.jpg").write_bytes(jpeg(original, 42))
    result = prepare_dataset(raw, out, fast_params, show_progress=False)
    rows = {row["source_path"]: row for row in read_manifest(out)}
    bridge = rows["PetImages/Cat/second_copy.jpg"]
    assert (bridge["status"], bridge["reason"]) == ("refused", "split_conflict")
    moved = rows["PetImages/Cat/first_copy.jpg"]
    kept = rows[f"PetImages/Cat/{sample_photos[7].name}"]
    assert result.moved == 1 and moved["split"] == kept["split"]
    assert_only_kept_photos_written(out)


def read_sha(out: Path, source: str) -> str:
    return next(row["sha256"] for row in read_manifest(out) if row["source_path"] == source)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_new_split_rule_redraws_the_split(
    tmp_path: Path, make_raw: MakeRaw, sample_photos: list[Path], fast_params: DataParams
) -> None:
    raw = make_raw(sample_photos[::10])
    out = tmp_path / "prepared"
    prepare_dataset(raw, out, fast_params, show_progress=False)
    redrawn = fast_params.model_copy(update={"split": SplitParams(salt="second draw")})
    assert prepare_dataset(raw, out, redrawn, show_progress=False).pinned == 0
    assert all(bucket(sha, redrawn.split) == split for sha, split in kept_splits(out).items())


def test_a_failed_run_keeps_the_previous_data_set(
    tmp_path: Path,
    make_raw: MakeRaw,
    sample_photos: list[Path],
    fast_params: DataParams,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    raw = make_raw(sample_photos[::20])
    out = tmp_path / "prepared"
    prepare_dataset(raw, out, fast_params, show_progress=False)
    before = files_under(out)

    def disk_full(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(prepare_module, "write_report", disk_full)
    with pytest.raises(OSError, match="No space"):
        prepare_dataset(raw, out, fast_params, show_progress=False)
    assert files_under(out) == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["prepared", "raw"]


def test_unsafe_or_empty_paths_are_refused(
    tmp_path: Path, make_raw: MakeRaw, sample_photos: list[Path], fast_params: DataParams
) -> None:
    raw = make_raw(sample_photos[:2])
    foreign = tmp_path / "my_documents"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(DataError, match="does not look like a catdog data set"):
        prepare_dataset(raw, foreign, fast_params, show_progress=False)
    assert (foreign / "thesis.tex").read_text() == "precious"
    with pytest.raises(DataError, match="inside --out"):
        prepare_dataset(raw, tmp_path, fast_params, show_progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no files"):
        prepare_dataset(tmp_path / "empty", tmp_path / "out", fast_params, show_progress=False)
    with pytest.raises(DataError, match="does not exist"):
        prepare_dataset(tmp_path / "missing", tmp_path / "out", fast_params, show_progress=False)


def test_out_inside_raw_is_not_read_as_input(
    tmp_path: Path, make_raw: MakeRaw, sample_photos: list[Path], fast_params: DataParams
) -> None:
    raw = make_raw(sample_photos[:4])
    prepare_dataset(raw, raw / "prepared", fast_params, show_progress=False)
    # What a killed run leaves beside --out is removed, not read as photos.
    leftover = raw / ".prepared.0badcafe.building" / "train" / "cat"
    leftover.mkdir(parents=True)
    shutil.copyfile(sample_photos[50], leftover / "half-written.jpg")
    report = prepare_dataset(raw, raw / "prepared", fast_params, show_progress=False).report
    assert report["files"] == 4
    assert sorted(path.name for path in raw.iterdir()) == ["PetImages", "prepared"]


@pytest.mark.parametrize("count", [1, 7, 202, 8000])
def test_chunks_cover_every_file_in_order_and_end_small(count: int) -> None:
    files = [RawFile(source=f"Cat/{n:05d}.jpg", label="cat", size=1) for n in range(count)]
    chunks = prepare_module._chunks(files, workers=2)
    assert [item for chunk in chunks for item in chunk] == files
    sizes = [len(chunk) for chunk in chunks]
    assert max(sizes) <= prepare_module._MAX_CHUNK
    assert sizes == sorted(sizes, reverse=True)  # never a big chunk after small ones
    assert sizes[-1] == 1


def test_a_photo_filed_under_both_labels_is_refused_and_too_many_fail_the_stage(
    tmp_path: Path, make_raw: MakeRaw, sample_photos: list[Path], fast_params: DataParams
) -> None:
    raw = make_raw(sample_photos[:6] + sample_photos[100:106])
    twice = raw / "PetImages" / "Dog" / "filed_twice.jpg"
    shutil.copyfile(sample_photos[0], twice)  # identical bytes under Cat/ and Dog/
    out = tmp_path / "prepared"
    params = fast_params.model_copy(update={"max_label_conflict_fraction": 2 / 13})
    report = prepare_dataset(raw, out, params, show_progress=False).report
    rows = {row["source_path"]: row for row in read_manifest(out)}
    pair = [rows[f"PetImages/Cat/{sample_photos[0].name}"], rows["PetImages/Dog/filed_twice.jpg"]]
    assert [(row["status"], row["reason"]) for row in pair] == [("refused", "label_conflict")] * 2
    assert report["refusals"] == {"label_conflict": 2}
    assert report["kept"] == 11
    assert not list(out.rglob(f"{pair[0]['sha256']}.jpg"))  # neither cat/ nor dog/ has it
    (listed,) = report["label_conflicts"]
    assert listed["kind"] == "exact"
    assert sorted(photo["label"] for photo in listed["photos"]) == ["cat", "dog"]

    # Two of 13 files is over a limit of 10%: the stage fails, and nothing is written.
    strict = fast_params.model_copy(update={"max_label_conflict_fraction": 0.1})
    with pytest.raises(DataError, match="max_label_conflict_fraction") as caught:
        prepare_dataset(raw, tmp_path / "strict", strict, show_progress=False)
    assert caught.value.reason == "label_conflicts"
    assert "filed_twice.jpg (dog)" in caught.value.detail
    assert not (tmp_path / "strict").exists()
