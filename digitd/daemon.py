"""`digitd run`: wire a source, the pipeline and the sinks (output, `--serve`, `--exec`);
stop cleanly on Ctrl-C/SIGTERM, reload the live knobs on SIGHUP."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Callable

from digitd.audio import STDIN, wav_layout
from digitd.config import Config, ConfigError
from digitd.config import changed as config_changed
from digitd.events import ReloadEvent
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
        if path != STDIN:
            wav_layout(path)  # fail now, with one line, on a missing or broken file (a pipe fails on its first block)
        return FileSource(path, cfg.run.speed, cfg.audio.block_ms, cfg.audio.ring_seconds,
                          name="demo.wav" if getattr(args, "demo", False) else "stdin" if path == STDIN else path)
    from digitd.capture import MicSource, resolve_device

    mic = MicSource(cfg.audio)
    resolve_device(mic.sd, cfg.audio.device)  # no device / no match: fail before loading the model
    return mic


def load(cfg: Config) -> DigitModel:
    from digitd.profile import with_user

    model = with_user(load_model(cfg.classify.model or None), cfg)
    model.warm_up()  # predictable first-digit latency
    return model


# knobs a SIGHUP applies to the running stream; every other change needs a restart
LIVE_KNOBS = ("classify.reject_threshold", "classify.steady_reject_threshold", "classify.min_voiced_ms", "classify.steady_min_voiced_ms", "classify.agree_min", "classify.agree_min_speech",
              "classify.voiced_range_db", "classify.talk_under_db", "classify.talk_threshold", "classify.near_talker_db", "classify.faint_within_s", "denoise.steady", "denoise.over", "denoise.floor_db", "denoise.max_change_db",
              "group.pause_ms", "group.length",
              "exec.command", "exec.timeout_s")


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


def apply_reload(cfg: Config, new: Config) -> tuple[list[str], list[str]]:
    """Copy the live knobs of `new` into the running `cfg` (the pipeline, grouper and exec
    hook read them per utterance); return (applied "knob=value", knobs needing a restart)."""
    applied, restart = [], []
    for knob in config_changed(cfg, new):
        section, key = knob.split(".")
        if knob in LIVE_KNOBS:
            value = getattr(getattr(new, section), key)
            setattr(getattr(cfg, section), key, value)
            applied.append(f"{knob}={value}")
        else:
            restart.append(knob)
    return applied, restart


def run_command(args: argparse.Namespace, cfg: Config, reload: Callable[[], Config] | None = None) -> int:
    """`reload`: re-reads the config the way this run read it (SIGHUP)."""
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

        def _reload() -> None:
            try:
                new = reload() if reload else None
            except ConfigError as e:
                pipeline.emit(ReloadEvent(error=str(e), at=pipeline.stream_time))
                return
            if new is not None:
                applied, restart = apply_reload(cfg, new)
                pipeline.emit(ReloadEvent(applied, restart, "", pipeline.stream_time))

        def _hup(signum, frame):  # read the file off the audio path (this handler runs on it)
            threading.Thread(target=_reload, name="reload", daemon=True).start()

        handlers = {signal.SIGINT: _stop, signal.SIGTERM: _stop}
        if hasattr(signal, "SIGHUP"):
            handlers[signal.SIGHUP] = _hup
        old = {sig: signal.signal(sig, h) for sig, h in handlers.items()}
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
