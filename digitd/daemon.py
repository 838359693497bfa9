"""`digitd run`: wire a source, the pipeline and the sinks (output, `--serve`, `--exec`);
stop cleanly on Ctrl-C/SIGTERM."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from digitd.audio import read_wav
from digitd.config import Config
from digitd.hook import ExecSink
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


def make_server(cfg: Config):
    """The `--serve` sink, bound and serving (None without an address). Addresses are
    checked and bound before the slow model load, so a bad one fails at once."""
    if not cfg.serve.address.strip():
        return None
    from digitd.serve import EventServer, check_allowed, parse_addresses

    addrs = parse_addresses(cfg.serve.address)
    for a in addrs:
        check_allowed(a, cfg.serve.allow_remote)
    return EventServer(addrs, cfg.serve.client_buffer_kb * 1024).start()


def output_sink(mode: str, pipeline: Pipeline, cfg: Config):
    if mode == "ui":
        from digitd.ui import LiveUI

        return LiveUI(pipeline, cfg)
    from digitd.sinks import JsonlSink, NumbersSink, PlainSink

    cls = {"plain": PlainSink, "numbers": NumbersSink}.get(mode, JsonlSink)
    return cls(on_closed=pipeline.stop)


def run_command(args: argparse.Namespace, cfg: Config) -> int:
    source = make_source(args, cfg)  # bad file / missing PortAudio: fail before the slow model load
    server = make_server(cfg)
    exec_sink = None
    stopped_by: list[int] = []
    try:
        model = load(cfg)
        pipeline = Pipeline(cfg, model)
        mode = output_mode(cfg)
        sink = output_sink(mode, pipeline, cfg)
        exec_sink = ExecSink(cfg.exec, report=pipeline.emit, clock=lambda: pipeline.stream_time)
        pipeline.sinks += [s for s in (sink, server, exec_sink) if s is not None]

        def _stop(signum, frame):  # the loop polls every 50 ms; the pending utterance is flushed
            stopped_by.append(signum)
            pipeline.stop()

        old = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            if server is not None and cfg.serve.wait_clients:
                while not stopped_by and not server.wait_for_clients(cfg.serve.wait_clients, 0.1):
                    pass
            if mode == "ui":
                with sink:  # type: ignore[attr-defined]
                    pipeline.run(source)
            else:
                pipeline.run(source)
        finally:
            for sig, h in old.items():
                signal.signal(sig, h)
            exec_sink.close(wait=not stopped_by)  # its reports still reach the sinks below
            exec_sink = None
            sink.close()
    finally:
        if exec_sink is not None:
            exec_sink.close(wait=False)
        if server is not None:
            server.close()  # last events out, clients disconnected, socket file removed
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
