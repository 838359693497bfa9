"""`digitd run`: wire a source, the pipeline and the sinks; stop cleanly on Ctrl-C/SIGTERM."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from digitd.audio import read_wav
from digitd.config import Config
from digitd.model import DigitModel, load_model
from digitd.pipeline import Pipeline

DEMO_WAV = Path(__file__).resolve().parent / "data" / "demo.wav"


def output_mode(cfg: Config) -> str:
    mode = cfg.output.mode
    if mode == "auto":
        return "ui" if sys.stdout.isatty() else "jsonl"
    if mode == "ui" and not sys.stdout.isatty():
        return "plain"  # a live UI needs a terminal; degrade to plain lines
    return mode


def make_source(args: argparse.Namespace, cfg: Config):
    from digitd.sources import FileSource

    path = str(DEMO_WAV) if getattr(args, "demo", False) else getattr(args, "input", None)
    if path:
        read_wav(path, mmap=True)  # fail now, with one line, on a missing or broken file
        return FileSource(path, cfg.run.speed, cfg.audio.block_ms, cfg.audio.ring_seconds,
                          name="demo.wav" if getattr(args, "demo", False) else path)
    from digitd.capture import MicSource, resolve_device

    mic = MicSource(cfg.audio)
    resolve_device(mic.sd, cfg.audio.device)  # no device / no match: fail before loading the model
    return mic


def load(cfg: Config) -> DigitModel:
    model = load_model(cfg.classify.model or None, keep_estimator=False)
    model.warm_up()  # predictable first-digit latency
    return model


def run_command(args: argparse.Namespace, cfg: Config) -> int:
    source = make_source(args, cfg)  # bad file / missing PortAudio: fail before the slow model load
    model = load(cfg)
    mode = output_mode(cfg)
    pipeline = Pipeline(cfg, model)
    if mode == "ui":
        from digitd.ui import LiveUI

        sink = LiveUI(pipeline, cfg)
    elif mode == "plain":
        from digitd.sinks import PlainSink

        sink = PlainSink(on_closed=pipeline.stop)
    elif mode == "numbers":
        from digitd.sinks import NumbersSink

        sink = NumbersSink(on_closed=pipeline.stop)
    else:
        from digitd.sinks import JsonlSink

        sink = JsonlSink(on_closed=pipeline.stop)
    pipeline.sinks.append(sink)

    stopped_by: list[int] = []

    def _stop(signum, frame):  # the loop polls every 50 ms; the pending utterance is flushed
        stopped_by.append(signum)
        pipeline.stop()

    old = {s: signal.signal(s, _stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        if mode == "ui":
            with sink:  # type: ignore[attr-defined]
                pipeline.run(source)
        else:
            pipeline.run(source)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        sink.close()
    if stopped_by:
        # Stopped by Ctrl-C/SIGTERM: the stream is closed, threads joined, the last utterance
        # and the summary written. Skip interpreter teardown (0.3-0.7 s of freeing numpy/scipy/
        # sklearn modules on a busy 2-core box) so the daemon is gone within the 0.5 s budget.
        for f in (sys.stdout, sys.stderr):
            try:
                f.flush()
            except (OSError, ValueError):
                pass
        os._exit(0)
    return 0
