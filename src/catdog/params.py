"""Pipeline parameters: `params.yaml`, DVC's convention, one section per stage.

Each stage declares a pydantic model of its own section and reads it with `load_section`, so a
typo in params.yaml is a clear error naming the key, not a silent default.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from catdog.errors import ConfigError

DEFAULT_PARAMS = Path("params.yaml")

Section = TypeVar("Section", bound=BaseModel)


def load_params(path: Path = DEFAULT_PARAMS) -> dict[str, object]:
    """The whole params file as a dict; a missing file means every default."""
    if not path.exists():
        return {}
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path} must hold a mapping of sections, not {type(loaded).__name__}")
    return loaded


def load_section(path: Path, section: str, model: type[Section]) -> Section:
    """Validate one section of the params file against its stage's model."""
    raw = load_params(path).get(section, {})
    try:
        return model.model_validate(raw or {})
    except ValidationError as exc:
        raise ConfigError(f"{path} section '{section}': {exc}") from exc
