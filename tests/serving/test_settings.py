"""The service's settings: a token file (a mounted secret) and its failures."""

from __future__ import annotations

from pathlib import Path

import pytest

from catdog.errors import ConfigError
from catdog.serving.settings import load_settings


def test_a_token_file_fills_the_token_and_wins_over_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-from-file\n", encoding="utf-8")
    monkeypatch.setenv("CATDOG_API_TOKEN", "from-env")
    monkeypatch.setenv("CATDOG_API_TOKEN_FILE", str(token_file))
    token = load_settings().api_token
    assert token is not None
    assert token.get_secret_value() == "s3cret-from-file"


@pytest.mark.parametrize("content", [None, "", b"\xff\xfe"], ids=["missing", "empty", "binary"])
def test_an_unusable_token_file_is_a_config_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str | bytes | None
) -> None:
    token_file = tmp_path / "token"
    if isinstance(content, bytes):
        token_file.write_bytes(content)
    elif content is not None:
        token_file.write_text(content, encoding="utf-8")
    monkeypatch.setenv("CATDOG_API_TOKEN_FILE", str(token_file))
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert "CATDOG_API_TOKEN_FILE" in str(raised.value)
    assert str(token_file) in str(raised.value)
