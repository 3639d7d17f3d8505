"""Architectures: shapes, sizes, and where pretrained weights come from (never the internet)."""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading
from pathlib import Path

import pytest
import torch
from torchvision.models import resnet18

from catdog.errors import ConfigError, PretrainedWeightsError
from catdog.training import models
from catdog.training.models import ARCHITECTURES, build_model, count_gflops


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("size", [32, 64, 100])
def test_every_architecture_maps_images_to_two_logits(arch: str, size: int) -> None:
    model = build_model(arch).eval()
    with torch.no_grad():
        out = model(torch.randn(3, 3, size, size))
    assert out.shape == (3, 2)
    assert out.dtype == torch.float32


def test_efficient_architecture_is_cheap_and_width_scales_it() -> None:
    base = count_gflops(build_model("mobilenet_se"), 128)
    wide = count_gflops(build_model("mobilenet_se", width=1.5), 128)
    assert base < 0.5
    assert wide < 0.5
    assert wide > 1.5 * base
    assert base < count_gflops(build_model("resnet18"), 128) / 5


def test_unknown_architecture_and_bad_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown architecture"):
        build_model("vgg99")
    with pytest.raises(ConfigError, match="bad options"):
        build_model("simple_cnn", depth=7)
    with pytest.raises(ConfigError, match="only for resnet18"):
        build_model("mobilenet_se", pretrained=True)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_pretrained_offline_fails_with_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    url = f"http://127.0.0.1:{_closed_port()}/models/resnet18-f37072fd.pth"
    monkeypatch.setattr(models, "RESNET18_WEIGHTS_URL", url)
    with pytest.raises(PretrainedWeightsError, match="offline") as info:
        build_model("resnet18", pretrained=True)
    assert info.value.reason == "pretrained_weights_unavailable"
    assert str(tmp_path / "torch") in info.value.detail


@pytest.fixture
def weights_file(tmp_path: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    """A ResNet-18 ImageNet-shaped state dict, named as torch.hub expects (hash prefix)."""
    state = resnet18(weights=None).state_dict()
    staging = tmp_path / "staging.pth"
    torch.save(state, staging)
    digest = hashlib.sha256(staging.read_bytes()).hexdigest()[:8]
    served = tmp_path / "served" / f"resnet18-{digest}.pth"
    served.parent.mkdir()
    staging.rename(served)
    return served, state


def test_pretrained_weights_download_from_a_local_server(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    weights_file: tuple[Path, dict[str, torch.Tensor]],
) -> None:
    served, state = weights_file
    handler = _quiet_handler(served.parent)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
        port = server.server_address[1]
        monkeypatch.setattr(
            models, "RESNET18_WEIGHTS_URL", f"http://127.0.0.1:{port}/{served.name}"
        )
        model = build_model("resnet18", pretrained=True)
    finally:
        server.shutdown()
        server.server_close()
    assert torch.equal(model.state_dict()["conv1.weight"], state["conv1.weight"])
    assert model.state_dict()["fc.weight"].shape == (2, 512)
    assert (tmp_path / "torch" / "hub" / "checkpoints" / served.name).is_file()


def test_pretrained_weights_load_from_the_cache_without_network(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    weights_file: tuple[Path, dict[str, torch.Tensor]],
) -> None:
    served, state = weights_file
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    served.rename(cache / served.name)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    url = f"http://127.0.0.1:{_closed_port()}/{served.name}"
    monkeypatch.setattr(models, "RESNET18_WEIGHTS_URL", url)
    model = build_model("resnet18", pretrained=True)
    assert torch.equal(model.state_dict()["layer4.1.conv2.weight"], state["layer4.1.conv2.weight"])


def _quiet_handler(directory: Path) -> type[http.server.SimpleHTTPRequestHandler]:
    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(directory), **kwargs)  # type: ignore[arg-type]

        def log_message(self, format: str, *args: object) -> None:
            return

    return Handler
