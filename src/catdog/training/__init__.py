"""The training stage: decode once, augment on the device, fit, track in MLflow, checkpoint."""
