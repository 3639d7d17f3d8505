"""`catdog predict` (local files, no server) and the `serve` command's settings."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from PIL import Image
from serving_support import BLUE, RED, catdog_cli, encode, solid
from typer.testing import CliRunner

from catdog.cli import app
from catdog.errors import ConfigError
from catdog.serving import settings as settings_module
from catdog.serving.settings import Settings, load_settings

runner = CliRunner()


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    (folder / "nested").mkdir(parents=True)
    (folder / "a-red.jpg").write_bytes(solid(RED))
    (folder / "nested" / "b-blue.png").write_bytes(encode(Image.new("RGB", (40, 30), BLUE), "PNG"))
    (folder / "c-notes.txt").write_text("not a photo")
    (folder / ".hidden.jpg").write_bytes(solid(RED))
    return folder


def test_predict_prints_json_lines_and_exits_3_when_a_file_is_refused(
    photos: Path, tiny_model: Path
) -> None:
    result = runner.invoke(app, ["predict", str(photos), "--model", str(tiny_model), "--json"])
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert result.exit_code == 3
    assert [Path(r["file"]).name for r in records] == ["a-red.jpg", "c-notes.txt", "b-blue.png"]
    assert [r.get("label") or r["error"] for r in records] == ["cat", "not_an_image", "dog"]
    assert records[0]["model_version"] == "tiny-1"
    # Which model answered: on stderr in one line, and in every answer's JSON
    sha256 = hashlib.sha256(tiny_model.read_bytes()).hexdigest()
    assert records[0]["model"] == {"spec": str(tiny_model), "version": "tiny-1", "sha256": sha256}
    assert f"model: {tiny_model} (version tiny-1, sha256 {sha256})" in " ".join(
        result.stderr.split()
    )
    assert "model:" not in result.stdout, "stdout stays JSON lines"


def test_predict_table_and_exit_0_when_every_file_is_classified(
    photos: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(photos)
    result = runner.invoke(app, ["predict", "a-red.jpg", "--model", str(tiny_model)])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if "a-red.jpg" in line)
    assert "cat" in row


def test_predict_agrees_with_the_service_on_real_photos(reference_model: Path) -> None:
    """Same classifier, same preprocessing: the CLI's answer is the service's answer."""
    from catdog.predictor import OnnxClassifier  # noqa: PLC0415

    photos = sorted(Path(__file__).resolve().parents[2].glob("samples/petimages/*/*.jpg"))[::50]
    result = runner.invoke(
        app, ["predict", *map(str, photos), "--model", str(reference_model), "--json"]
    )
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    offline = OnnxClassifier(reference_model).classify(photos)
    assert result.exit_code == 0
    assert [r["label"] for r in records] == [p.label for p in offline]


def test_every_setting_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "CATDOG_MODEL": "models:/catdog@champion",
        "CATDOG_PORT": "9000",
        "CATDOG_MAX_BATCH": "6",
        "CATDOG_MAX_WAIT_MS": "7.5",
        "CATDOG_QUEUE_SIZE": "24",
        "CATDOG_MAX_UPLOAD_MB": "2",
        "CATDOG_MAX_PIXELS": "1000",
        "CATDOG_API_TOKEN": "t0k",
        "CATDOG_LOG_LEVEL": "warning",
        "CATDOG_WORKERS": "2",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.model == "models:/catdog@champion"
    assert (settings.port, settings.max_batch, settings.max_wait_ms) == (9000, 6, 7.5)
    assert (settings.queue_size, settings.max_upload_bytes, settings.max_pixels) == (
        24,
        2 * 1024 * 1024,
        1000,
    )
    assert settings.api_token is not None
    assert settings.api_token.get_secret_value() == "t0k"
    assert "t0k" not in repr(settings)
    assert settings.log_level == "warning"
    assert Settings(port=9100).port == 9100, "an explicit option wins over the environment"


def test_a_batch_that_could_never_be_admitted_is_refused() -> None:
    with pytest.raises(ConfigError, match="max_batch_files"):
        load_settings(queue_size=4, max_batch_files=8)


def test_a_bad_setting_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CATDOG_MAX_BATCH", "0")
    result = catdog_cli("serve")
    assert result.returncode != 0
    assert "CATDOG_MAX_BATCH" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("cores", "workers", "expected"),
    [(2, 1, (1, 2)), (8, 1, (2, 4)), (8, 2, (1, 4)), (1, 1, (1, 1)), (2, 4, (1, 1))],
)
def test_runners_share_out_the_cores(
    monkeypatch: pytest.MonkeyPatch, cores: int, workers: int, expected: tuple[int, int]
) -> None:
    monkeypatch.setattr(settings_module, "available_cores", lambda: cores)
    assert Settings(workers=workers).threads_per_worker() == expected
    chosen = Settings(workers=workers, ort_threads=3, runners=5)
    assert chosen.threads_per_worker() == (3, 5)
