"""The comparison baseline: how the seed projects serve a cat/dog model.

Kept deliberately as they wrote it, faults included: an `async def` endpoint that does blocking
work (PIL decode, torchvision transforms, an eager PyTorch forward pass) on the event loop, so the
server handles one request at a time however many arrive. The model is a ResNet-18 whose `fc` is
replaced by one output logit (sigmoid = P(dog)), initialised at random with a fixed seed: speed
does not depend on the weights, and the same seed gives `export_baseline` the very same network.

Run: `uvicorn benchmarks.serving.baseline_service:app --host 127.0.0.1 --port 8001`
"""

from __future__ import annotations

import io
from typing import Any

import torch
from fastapi import FastAPI, File, UploadFile
from PIL import Image
from torch import nn
from torchvision import models, transforms

SEED = 0
IMAGE_SIZE = 224
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def build_model(seed: int = SEED) -> nn.Module:
    """ResNet-18 with one output logit, random weights from `seed`, in eval mode."""
    torch.manual_seed(seed)
    resnet = models.resnet18(weights=None)
    resnet.fc = nn.Linear(resnet.fc.in_features, 1)
    model: nn.Module = resnet.eval()
    return model


transform = transforms.Compose(
    [
        transforms.Resize((IMAGE_SIZE, IMAGE_SIZE)),
        transforms.ToTensor(),
        transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ]
)
model = build_model()
app = FastAPI(title="seed-style cat/dog service (benchmark baseline)")


@app.get("/health")
async def health() -> dict[str, str]:
    """Liveness, as the seed projects had it."""
    return {"status": "ok"}


@app.post("/predict")
async def predict(file: UploadFile = File(...)) -> dict[str, Any]:
    """Classify one upload, blocking the event loop while doing it (the seed projects' way)."""
    image = Image.open(io.BytesIO(await file.read())).convert("RGB")
    batch = transform(image).unsqueeze(0)
    with torch.no_grad():
        dog = torch.sigmoid(model(batch))[0, 0].item()
    label = "dog" if dog >= 0.5 else "cat"
    return {
        "label": label,
        "confidence": max(dog, 1.0 - dog),
        "probabilities": {"cat": 1.0 - dog, "dog": dog},
    }
