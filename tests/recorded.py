"""Run a pipeline over a file's audio and keep what the tests read: every event, and every
utterance the classifier decided with its prediction and reject reason (`Pipeline.on_utterance`)."""

from __future__ import annotations

import numpy as np

from digitd.bench import Recorder
from digitd.config import Config
from digitd.pipeline import Pipeline
from digitd.sources import FileSource


def run_recorded(cfg: Config, model, audio: np.ndarray, name: str = "test") -> tuple[Pipeline, list, list]:
    """(the pipeline after the run, its events, [(utterance, prediction, reason or None)])."""
    rows = []
    pipe = Pipeline(cfg, model, history=None)
    pipe.on_utterance = lambda u, heard, pred, reason: rows.append((u, pred, reason))
    rec = Recorder()
    pipe.sinks.append(rec)
    pipe.run(FileSource(audio, speed="max", name=name))
    return pipe, rec.events, rows
