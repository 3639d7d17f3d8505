"""Helpers for the service's tests: tiny real ONNX models, apps in process, real servers.

Mechanics (batching, errors, reload) run on tiny ONNX models built here with `onnx.helper`:
channel means -> Gemm -> Softmax, so a red photo is a cat and a blue one a dog, whatever was
trained. "The right answer" tests use the model the service serves by default (the shipped
reference model), on real photos.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from catdog.preprocess import Preprocessing
from catdog.serving.app import create_app
from catdog.serving.runner import RunnerProcess
from catdog.serving.service import InferenceService
from catdog.serving.settings import Settings

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples" / "petimages"
READY_TIMEOUT_S = 20.0


def write_tiny_model(
    folder: Path,
    *,
    version: str = "tiny-1",
    size: int = 32,
    swap: bool = False,
    pet_threshold: float | None = None,
) -> Path:
    """A real ONNX classifier: red-heavy photos are cats, blue-heavy are dogs (`swap` flips).
    With `pet_threshold` it also outputs `pet_score`, near 0 for green-heavy photos and near 1
    otherwise, and its card recommends that threshold."""
    from onnx import TensorProto, helper, numpy_helper  # noqa: PLC0415

    weights = np.array([[4.0, -4.0], [0.0, 0.0], [-4.0, 4.0]], dtype=np.float32)
    if swap:
        weights = weights[:, ::-1].copy()
    nodes = [
        helper.make_node("ReduceMean", ["image"], ["means"], axes=[2, 3], keepdims=0),
        helper.make_node("Gemm", ["means", "weights", "bias"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    outputs = [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 2])]
    initializers = [
        numpy_helper.from_array(weights, "weights"),
        numpy_helper.from_array(np.zeros(2, dtype=np.float32), "bias"),
    ]
    if pet_threshold is not None:
        nodes += [
            helper.make_node("Gemm", ["means", "pet_weights", "pet_bias"], ["pet_logit"]),
            helper.make_node("Sigmoid", ["pet_logit"], ["pet_column"]),
            helper.make_node("Flatten", ["pet_column"], ["pet_flat"], axis=0),
            helper.make_node("Squeeze", ["pet_flat", "zero"], ["pet_score"]),
        ]
        outputs.append(helper.make_tensor_value_info("pet_score", TensorProto.FLOAT, ["N"]))
        initializers += [
            numpy_helper.from_array(np.array([[0.0], [-8.0], [0.0]], np.float32), "pet_weights"),
            numpy_helper.from_array(np.array([2.0], np.float32), "pet_bias"),
            numpy_helper.from_array(np.array([0], np.int64), "zero"),
        ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, size, size])],
        outputs,
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    path.write_bytes(model.SerializeToString())
    card = {
        "name": "tiny",
        "version": version,
        "architecture": "channel_means",
        "preprocessing": Preprocessing(size=size).to_dict(),
        "metrics": {},
    }
    if pet_threshold is not None:
        card["not_a_pet"] = {"output": "pet_score", "threshold": pet_threshold}
    (folder / "model.card.json").write_text(json.dumps(card), encoding="utf-8")
    return path


def encode(img: Image.Image, fmt: str = "JPEG", **params: object) -> bytes:
    """An image as the bytes of a file in `fmt`."""
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def solid(color: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> bytes:
    """A JPEG of one colour: red is a cat and blue a dog for the tiny models."""
    return encode(Image.new("RGB", size, color))


RED = (220, 40, 40)
BLUE = (40, 40, 220)


@asynccontextmanager
async def serving(
    settings: Settings, runners: list[RunnerProcess] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """An app in this process, started (lifespan), ready, with a client bound to it."""
    async with serving_service(settings, runners) as (client, _):
        yield client


@asynccontextmanager
async def serving_service(
    settings: Settings, runners: list[RunnerProcess] | None = None, *, root_path: str = ""
) -> AsyncIterator[tuple[httpx.AsyncClient, InferenceService]]:
    """`serving`, and the app's InferenceService (its runners, its batcher)."""
    app = create_app(settings, runners=runners)
    async with app.router.lifespan_context(app):
        service = app.state.service
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not service.models.ready:
            if service.models.load_error is not None or time.monotonic() > deadline:
                raise RuntimeError(f"model not ready: {service.models.load_error}")
            await asyncio.sleep(0.01)
        transport = httpx.ASGITransport(app=app, root_path=root_path)
        base = f"http://catdog.test{root_path}"
        async with httpx.AsyncClient(transport=transport, base_url=base) as client:
            yield client, service


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A `catdog serve` subprocess on 127.0.0.1."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def run_server(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None, wait_ready: bool = True
) -> Iterator[Server]:
    """Start `catdog serve` on a free port, wait for /ready, always stop it (SIGTERM, SIGKILL)."""
    port = free_port()
    log = tmp_path / f"server-{port}.log"
    environment = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "catdog.cli", "serve", "--port", str(port), *args],
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    server = Server(process, f"http://127.0.0.1:{port}", log)
    try:
        if wait_ready:
            deadline = time.monotonic() + READY_TIMEOUT_S
            while True:
                assert process.poll() is None, f"server exited:\n{server.output()}"
                assert time.monotonic() < deadline, f"not ready:\n{server.output()}"
                try:
                    if httpx.get(f"{server.url}/ready", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def catdog_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run `catdog ARGS...` as a user would, in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "catdog.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def stat_fields(path: Path) -> list[str]:
    """The fields of a /proc stat file after the command name (field 3 onwards)."""
    return path.read_text().rsplit(")", 1)[1].split()


def runner_pids(pid: int) -> list[int]:
    """The service's runner processes: its children that run catdog.serving.child."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int(stat_fields(entry / "stat")[1])
            command = (entry / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue  # it ended while we looked
        if parent == pid and b"catdog.serving.child" in command:
            found.append(int(entry.name))
    return sorted(found)


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one series in Prometheus text (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        metric_name, _, rest = series.partition("{")
        got = ",".join(sorted(rest.rstrip("}").split(","))) if rest else ""
        if metric_name == name and got == wanted:
            return float(value)
    return 0.0


# A Pillow plugin that kills the process decoding it: what a decoder bug in a C library does.
CRASHING_PLUGIN = """
import os
import signal

from PIL import Image, ImageFile

MAGIC = b"CATDOG-CRASH"


class CrashingImageFile(ImageFile.ImageFile):
    format = "CRASH"

    def _open(self):
        os.kill(os.getpid(), signal.SIGSEGV)


Image.register_open("CRASH", CrashingImageFile, lambda prefix: prefix.startswith(MAGIC))
"""
CRASHING_PHOTO = b"CATDOG-CRASH" + bytes(range(256)) * 4


def plant_crashing_decoder(folder: Path) -> str:
    """A folder for PYTHONPATH whose sitecustomize plants CRASHING_PLUGIN in every runner."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(CRASHING_PLUGIN, encoding="utf-8")
    return os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH", "")]))
