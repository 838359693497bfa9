"""digitd: a hands-free spoken-digit recognizer that runs as a real-time audio daemon."""

__version__ = "0.1.0"

SAMPLE_RATE = 8000  # the one rate features, models and the pipeline work at
