"""The inference service: FastAPI + ONNX Runtime, micro-batched, no torch."""
