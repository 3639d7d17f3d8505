"""catdog: tell cats from dogs in shelter photos, and keep that model healthy in production."""

from catdog.privacy import disable_telemetry

disable_telemetry()

__version__ = "0.1.0"
