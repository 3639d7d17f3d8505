"""No calls home: MLflow and DVC send usage data unless told not to.

Imported by the package itself, so every entry point (CLI, service, tests, DVC stages) is covered
before MLflow or DVC can be imported. A user's explicit setting is kept.
"""

import os

TELEMETRY_OFF = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "DVC_NO_ANALYTICS": "1",
}


def disable_telemetry() -> None:
    """Turn usage reporting off unless the environment already decided."""
    for name, value in TELEMETRY_OFF.items():
        os.environ.setdefault(name, value)
