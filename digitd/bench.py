"""`digitd bench`: how fast, how light and how accurate the whole `digitd run` pipeline is.

Runs the exact pipeline (same FileSource, framer, VAD, endpointer, worker) on seeded streams:
`--scenario fsdd` (FSDD test-split digits: speakers the model trained on) or `--scenario room`
(`digitd/room.py`: unseen speakers, non-digit words, coughs/clicks/knocks and backgrounds at
several SNRs, one stream per condition, scored per condition and overall), or on a recorded
`--input` WAV with its `--truth`. Two simulation modes (whisper_streaming's):
- `--speed max`: compute-bound. Real-time factor, throughput, per-stage cost; `emitted`
  is the compute-unaware (lower-bound) end-of-speech latency in stream time.
- `--speed 1`: paced like live audio through the same ring buffer as the microphone.
  Wall-clock end-of-speech -> digit latency, CPU percent of one core, queueing.
Cold start is measured on a fresh `digitd run` process. Benchmarks print numbers; tests
check this module's arithmetic, never the machine's speed.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from digitd import SAMPLE_RATE
from digitd.config import Config, ConfigError, apply, as_dict, comma_list, parse_override
from digitd.scoring import Score, combine
from digitd.sysinfo import peak_rss_mb, reset_peak_rss

STAGES = ("vad", "endpoint", "features", "classify", "total")


def percentiles_ms(values_ms: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/max/mean of a list of milliseconds (NaN when empty)."""
    a = np.asarray(values_ms, dtype=np.float64)
    if a.size == 0:
        return {"n": 0, "p50_ms": float("nan"), "p95_ms": float("nan"), "p99_ms": float("nan"),
                "max_ms": float("nan"), "mean_ms": float("nan")}
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return {"n": int(a.size), "p50_ms": float(p50), "p95_ms": float(p95), "p99_ms": float(p99),
            "max_ms": float(a.max()), "mean_ms": float(a.mean())}


def stage_samples_ms(timings: Any) -> dict[str, list[float]]:
    """The pipeline's Timings as per-stage lists of milliseconds."""
    return {
        "vad": [v / 1000.0 for v in timings.vad_us],
        "endpoint": [v / 1000.0 for v in timings.endpoint_us],
        "features": list(timings.features_ms),
        "classify": list(timings.classify_ms),
        "total": list(timings.total_ms),
    }


def stage_report(samples_ms: dict[str, list[float]], audio_s: float) -> tuple[dict[str, dict], dict[str, float]]:
    """Per-stage percentiles, and per-stage real-time factor (stage compute time / audio time)."""
    stages = {k: percentiles_ms(samples_ms.get(k, [])) for k in STAGES}
    rtf = {k: float(np.sum(samples_ms.get(k, [])) / 1000.0 / audio_s) if audio_s > 0 else float("nan")
           for k in ("vad", "endpoint", "features", "classify")}
    return stages, rtf


def wall_latencies_ms(recv_s: Sequence[float], true_end_s: Sequence[float], t0: float, speed: float) -> list[float]:
    """Paced mode: wall time an event arrived minus the wall time its word's last sample was
    played (t0 + end / speed)."""
    return [1000.0 * (r - (t0 + e / speed)) for r, e in zip(recv_s, true_end_s)]


@dataclass
class Recorder:
    """A sink that keeps every event with the monotonic time it arrived."""

    events: list[Any] = field(default_factory=list)
    recv: list[float] = field(default_factory=list)

    def handle(self, event: Any) -> None:
        self.recv.append(time.monotonic())
        self.events.append(event)

    def close(self) -> None:
        pass


def score_metrics(sc: Score) -> dict[str, Any]:
    """The accuracy half of a report, from a `scoring.Score` (one stream or several combined)."""
    return {
        "der": sc.der,
        "n_truth": sc.n,
        "correct": sc.correct,
        "substitutions": sc.substitutions,
        "deletions": sc.deletions,
        "insertions": sc.insertions,
        "fa_rate": sc.fa_rate,
        "n_words": sc.n_words,
        "word_false_alarms": sc.word_false_alarms,
        "sound_fa_rate": sc.sound_fa_rate,
        "n_sounds": sc.n_sounds,
        "sound_false_alarms": sc.sound_false_alarms,
        "background_insertions": sc.background_insertions,
        "background_s": sc.background_s,
        "background_insertions_per_min": sc.background_insertions_per_min,
        "eos_latency_ms": _pcts([1000 * x for x in sc.latencies_s]),
    }


def _pcts(values_ms: Sequence[float]) -> dict[str, float]:
    return {k.replace("_ms", ""): v for k, v in percentiles_ms(values_ms).items()}


@dataclass
class Run:
    """One pass of the pipeline over one stream: the report's numbers and what pools across streams."""

    metrics: dict[str, Any]
    score: Score
    wall_s: float
    audio_s: float
    wall_latencies_ms: list[float] = field(default_factory=list)  # paced runs only
    events: list[Any] = field(default_factory=list)  # every event the pipeline emitted, in order (scripts/room_losses.py reads them)
    drops: list[tuple[int, int, str]] = field(default_factory=list)  # the endpointer's dropped pieces (Endpointer.drops)


@dataclass
class _Heard:
    key: bytes  # what was heard: the samples' digest
    features: Any = None  # the model's features of them; None when their prediction is remembered


class Remembered:
    """The model, each classification remembered by the exact samples it heard. A room `--sweep`
    runs the real pipeline once per setting over the same streams; a word that a later setting
    cuts exactly as an earlier one did gets the same prediction (a pure function of its samples and
    the model), so it is not classified again: a sweep of the classifier's rules reuses nearly every
    one. The first setting's times are the daemon's; a later setting's RTF and stage times count the
    reuse (`reused`, reported as `reused_classifications`)."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self._seen: dict[bytes, Any] = {}
        self.reused = 0

    def __getattr__(self, name: str) -> Any:  # the rest (meta, classes, members) is the model's
        return getattr(self._model, name)

    @staticmethod
    def _key(kind: bytes, x: np.ndarray, trimmed: bool) -> bytes:
        x = np.ascontiguousarray(x)
        return kind + (b"t" if trimmed else b"w") + str(x.dtype).encode() + hashlib.blake2b(x.tobytes(), digest_size=16).digest()

    def forget(self) -> None:
        """Drop what was remembered (the next seed's streams share no word with these)."""
        self._seen.clear()

    def features(self, x: np.ndarray, *, trimmed: bool = False) -> _Heard:
        key = self._key(b"p", x, trimmed)
        return _Heard(key) if key in self._seen else _Heard(key, self._model.features(x, trimmed=trimmed))

    def classify(self, heard: _Heard) -> Any:
        if heard.features is None:
            self.reused += 1
            return self._seen[heard.key]
        pred = self._seen[heard.key] = self._model.classify(heard.features)
        return pred

    def cnn_vote(self, x: np.ndarray, *, trimmed: bool = False) -> Any:
        key = self._key(b"c", x, trimmed)
        if key not in self._seen:
            self._seen[key] = self._model.cnn_vote(x, trimmed=trimmed)
        return self._seen[key]


def run_once(cfg: Config, model: Any, audio: np.ndarray, truth: list[Any], speed: str) -> Run:
    """One pass of the real pipeline over `audio`; every number of the report but cold start."""
    from digitd.pipeline import Pipeline
    from digitd.scoring import score, score_numbers
    from digitd.sources import FileSource

    rec = Recorder()
    reused0 = getattr(model, "reused", 0)
    source = FileSource(audio, speed=speed, block_ms=cfg.audio.block_ms, ring_seconds=cfg.audio.ring_seconds,
                        name="bench-stream")
    pipe = Pipeline(cfg, model, [rec], history=None)
    reset_peak_rss()  # measure the pipeline, not the stream generator
    cpu0, wall0 = time.process_time(), time.perf_counter()
    summary = pipe.run(source)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    audio_s = len(audio) / SAMPLE_RATE
    sc = score(rec.events, truth)
    stages, stage_rtf = stage_report(stage_samples_ms(pipe.timings), audio_s)
    digit_events = [e for e in rec.events if getattr(e, "kind", "") == "digit"]
    out: dict[str, Any] = {
        "mode": "max" if speed == "max" else "realtime",
        "speed": speed,
        "audio_s": audio_s,
        "wall_s": wall,
        "cpu_s": cpu,
        "rtf": wall / audio_s,
        "rtf_cpu": cpu / audio_s,
        "audio_s_per_cpu_s": audio_s / cpu if cpu > 0 else float("inf"),
        "cpu_percent": 100.0 * cpu / wall if wall > 0 else float("nan"),
        "peak_rss_mb": peak_rss_mb(),
        **score_metrics(sc),
        "digits": summary.digits,
        "rejected": summary.rejected,
        "utterances": summary.utterances,
        "dropped_ms": summary.dropped_ms,
        "reused_classifications": getattr(model, "reused", 0) - reused0,
        "stages": stages,
        "stage_rtf": stage_rtf,
    }
    wl: list[float] = []
    ns = score_numbers(rec.events, truth, cfg.group)  # truth grouped by the daemon's own pause rule
    out.update(number_accuracy=ns.accuracy, n_numbers=ns.n, numbers_correct=ns.correct)
    if speed != "max" and getattr(source, "t0", None) is not None:
        ev_index = {id(e): i for i, e in enumerate(rec.events)}
        recv = [rec.recv[ev_index[id(digit_events[j])]] for _, j in sc.pairs]
        ends = [truth[i].end if hasattr(truth[i], "end") else truth[i]["end"] for i, _ in sc.pairs]
        wl = wall_latencies_ms(recv, ends, source.t0, float(speed))
        out["eos_wall_latency_ms"] = _pcts(wl)
    return Run(out, sc, wall, audio_s, wl, rec.events, list(pipe.endpointer.drops))


def cold_start(cfg_path: str | None, overrides: list[str], model_path: str | None) -> dict[str, float]:
    """Spawn a fresh `digitd run` on a short file: process start -> first frame processed."""
    from digitd.audio import write_wav

    with tempfile.TemporaryDirectory() as d:
        wav = Path(d) / "cold.wav"
        write_wav(wav, np.zeros(SAMPLE_RATE // 2, dtype=np.float32))
        cmd = [sys.executable, "-m", "digitd", "run", "--input", str(wav), "--speed", "max", "--jsonl"]
        if cfg_path:
            cmd += ["--config", cfg_path]
        for o in overrides:
            cmd += ["--set", o]
        if model_path:
            cmd += ["--model", model_path]
        t_spawn = time.time()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(f"cold-start probe failed: {proc.stderr.strip().splitlines()[-1:]}")
        summary = [json.loads(line) for line in proc.stdout.splitlines() if '"summary"' in line][-1]
    return {
        "cold_start_s": float(summary["first_frame_unix"]) - t_spawn,
        "daemon_peak_rss_mb": float(summary["peak_rss_mb"]),
    }


RUN_SECTIONS = ("audio", "vad", "endpoint", "denoise", "equalize", "classify", "group")  # what each bench run builds its pipeline from


def parse_sweep(spec: str) -> tuple[str, list[str]]:
    """'vad.aggressiveness=1,2,3' -> ('vad.aggressiveness', ['1', '2', '3'])."""
    if "=" not in spec:
        raise ConfigError(f"--sweep {spec!r}: expected section.key=v1,v2,...")
    key, values = spec.split("=", 1)
    vals = comma_list(values)
    if not vals:
        raise ConfigError(f"--sweep {spec!r}: no values")
    key = key.strip()
    # Each run shares what is built before the runs: the streams, the model, the profile. A swept
    # knob of those would change nothing and print identical rows as if it had been measured.
    section = key.split(".", 1)[0]
    if section == "bench":
        raise ConfigError(f"--sweep {key}: the bench's own knobs shape the streams, which are built once for every setting; "
                          "run the bench once per value with --set")
    if key == "classify.model":
        raise ConfigError("--sweep classify.model: the model is loaded once for every setting; run the bench once per model with --model")
    if section == "user":
        raise ConfigError(f"--sweep {key}: the user profile is applied once for every setting; run the bench once per value with --set")
    if section not in RUN_SECTIONS:
        raise ConfigError(f"--sweep {key}: the bench's runs never read [{section}]; sweep a knob of {', '.join(RUN_SECTIONS)}")
    return key, vals


def with_override(cfg: Config, key: str, value: str) -> Config:
    section, k, v = parse_override(f"{key}={value}")
    fresh = Config()
    apply(fresh, as_dict(cfg), origin="config")
    return apply(fresh, {section: {k: v}}, origin="--sweep")


def load_truth(path: str) -> list[dict[str, Any]]:
    """A truth file: a list of {digit, start, end}, or a room truth file ({"truth": [items]},
    items with a kind: digit | word | sound | background; `digitd/scoring.py`)."""
    from digitd.scoring import KINDS

    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: unreadable truth file ({e})") from None
    items = data.get("truth", data.get("words", data)) if isinstance(data, dict) else data
    shape = "a list of {digit, start, end} objects or a room truth file"
    if not isinstance(items, list):
        raise ConfigError(f"{path}: truth must be {shape}")
    for t in items:
        if not isinstance(t, dict) or not {"start", "end"} <= set(t):
            raise ConfigError(f"{path}: truth must be {shape}")
        kind = t.get("kind", "digit")
        if kind not in KINDS:
            raise ConfigError(f"{path}: truth kind {kind!r} is not one of {', '.join(KINDS)}")
        if kind != "background" and kind not in t:
            raise ConfigError(f"{path}: a {kind} item needs a {kind!r} field")
        if not all(isinstance(t[k], (int, float)) and not isinstance(t[k], bool) for k in ("start", "end")):
            raise ConfigError(f"{path}: start and end must be numbers (seconds)")
    return items


def build_stream(args: Any, cfg: Config) -> tuple[np.ndarray, list[Any]]:
    from digitd.synth import make_stream

    if args.input:
        from digitd.audio import load_wav

        if not args.truth:
            raise ConfigError("--input needs --truth JSON ([{digit, start, end}, ...])")
        return load_wav(args.input), load_truth(args.truth)
    b = cfg.bench
    return make_stream(n_digits=b.digits, seed=b.seed, gap_min_s=b.gap_min_s, gap_max_s=b.gap_max_s,
                       level_min_db=b.level_min_db, level_max_db=b.level_max_db, noise=b.noise, snr_db=b.snr_db)


def sweep_runs(args: Any, cfg: Config) -> list[tuple[str, Config]]:
    """("default", cfg), or one (label, config) per --sweep value."""
    sweeps = [parse_sweep(s) for s in args.sweep]
    if not sweeps:
        return [("default", cfg)]
    return [(f"{key}={v}", with_override(cfg, key, v)) for key, vals in sweeps for v in vals]


def bench_command(args: Any, cfg: Config) -> int:
    from digitd.model import load_model

    if cfg.bench.seeds.strip() and (cfg.bench.scenario != "room" or args.input):
        raise ConfigError("bench.seeds: only the room scenario pools several seeds (the FSDD stream and --input are one stream each)")
    runs = sweep_runs(args, cfg)  # a bad --sweep is refused before the model and streams are built

    t = time.perf_counter()
    from digitd.profile import with_user

    model = with_user(load_model(cfg.classify.model or None), cfg)
    model_load_s = time.perf_counter() - t
    model.warm_up()
    if cfg.bench.scenario == "room" and not args.input:
        return room_command(args, cfg, model, runs)
    return stream_command(args, cfg, model, model_load_s, runs)


def stream_command(args: Any, cfg: Config, model: Any, model_load_s: float, runs: list[tuple[str, Config]]) -> int:
    """One stream (the FSDD scenario, or --input with its truth): stage costs, accuracy, cold start."""
    from rich.console import Console
    from rich.progress import Progress

    err = Console(stderr=True)
    speed = cfg.bench.speed
    audio, truth = build_stream(args, cfg)
    if args.save_stream:
        from digitd.audio import write_wav

        out = Path(args.save_stream)
        out.mkdir(parents=True, exist_ok=True)
        write_wav(out / "stream.wav", audio)
        (out / "truth.json").write_text(json.dumps([t.to_dict() if hasattr(t, "to_dict") else t for t in truth], indent=1))
    if len(runs) > 1:
        model = Remembered(model)
    results = []
    with Progress(console=err, transient=True, disable=args.json and not err.is_terminal) as prog:
        task = prog.add_task(f"bench ({'max' if speed == 'max' else 'paced x' + speed})", total=len(runs) + 1)
        for label, c in runs:
            r = run_once(c, model, audio, truth, speed).metrics
            r["label"] = label
            r["scenario"] = "input" if args.input else "fsdd"
            results.append(r)
            prog.advance(task)
        user = [f"user.name={cfg.user.name}", f"user.dir={cfg.user.dir}"] if cfg.user.name else []  # the same profile
        cs = cold_start(args.config, list(args.overrides) + user, cfg.classify.model or None)
        prog.advance(task)
    for r in results:
        r.update(cs)
        r["model_load_s"] = model_load_s
        r["model"] = str(model.meta.get("path", ""))
    if args.json:
        print(json.dumps(results[0] if len(results) == 1 else {"sweep": results}, indent=None))
    else:
        print_tables(results)
    return 0


# -- the room scenario ----------------------------------------------------------------------------

CONDITION_KEYS = ("der", "n_truth", "correct", "substitutions", "deletions", "insertions", "fa_rate", "n_words",
                  "word_false_alarms", "sound_fa_rate", "n_sounds", "sound_false_alarms", "background_insertions",
                  "background_s", "background_insertions_per_min", "eos_latency_ms", "eos_wall_latency_ms", "rtf",
                  "audio_s", "digits", "rejected", "dropped_ms", "cpu_percent", "peak_rss_mb")


def pool_runs(runs: Sequence[Run]) -> Run:
    """Several passes (a room bench's conditions, or one condition over several seeds) as one:
    counts and latencies pooled (`scoring.combine`), times summed, the report's keys recomputed."""
    sc = combine([r.score for r in runs])
    wall, audio_s = sum(r.wall_s for r in runs), sum(r.audio_s for r in runs)
    cpu = sum(r.metrics["cpu_s"] for r in runs)
    wl = [x for r in runs for x in r.wall_latencies_ms]
    m: dict[str, Any] = {
        "audio_s": audio_s, "wall_s": wall, "cpu_s": cpu,
        "rtf": wall / audio_s if audio_s > 0 else float("nan"),
        "cpu_percent": 100.0 * cpu / wall if wall > 0 else float("nan"),
        "peak_rss_mb": max(r.metrics["peak_rss_mb"] for r in runs),  # each run starts from a reset peak
        **score_metrics(sc),
        **{k: sum(r.metrics[k] for r in runs) for k in ("digits", "rejected", "utterances", "dropped_ms", "reused_classifications")},
    }
    if any("eos_wall_latency_ms" in r.metrics for r in runs):
        m["eos_wall_latency_ms"] = _pcts(wl)
    return Run(m, sc, wall, audio_s, wl)


def room_report(runs: dict[str, Run], conds: Sequence[Any], speed: str) -> dict[str, Any]:
    """Overall numbers (every condition's counts and latencies pooled) and one entry per condition."""
    out: dict[str, Any] = {"scenario": "room", "mode": "max" if speed == "max" else "realtime", "speed": speed,
                           **pool_runs(list(runs.values())).metrics}
    by = {}
    for c in conds:
        m = runs[c.name].metrics
        by[c.name] = {"background": c.background, "snr_db": c.snr_db, **{k: m[k] for k in CONDITION_KEYS if k in m}}
    out["by_condition"] = by
    return out


def room_command(args: Any, cfg: Config, model: Any, runs: list[tuple[str, Config]]) -> int:
    """Every room condition through the real pipeline, once per --sweep setting."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from digitd.errors import DigitdError
    from digitd.espeak import EspeakError
    from digitd.room import RoomError, conditions, make_room_stream, seeds, write_stream

    err = Console(stderr=True)
    speed = cfg.bench.speed
    if len(runs) > 1:
        model = Remembered(model)
    try:
        conds = conditions(cfg.bench)
        stream_seeds = seeds(cfg.bench)
    except RoomError as e:
        raise DigitdError(str(e)) from None
    synthetic = True
    # one seed's streams at a time: 16 conditions are ~90 MB of float32 audio per seed
    done: dict[str, dict[str, list[Run]]] = {label: {c.name: [] for c in conds} for label, _ in runs}
    per_seed: dict[str, dict[str, float]] = {label: {} for label, _ in runs}
    columns = (TextColumn("[progress.description]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True, disable=args.json and not err.is_terminal) as prog:
        task = prog.add_task("room", total=len(stream_seeds) * len(conds) * (1 + len(runs)))
        for seed in stream_seeds:
            b = replace(cfg.bench, seed=seed)
            where = f" seed {seed}" if len(stream_seeds) > 1 else ""
            streams: dict[str, tuple[np.ndarray, list[dict[str, Any]]]] = {}
            for c in conds:
                prog.update(task, description=f"generating {c.name}{where}")
                try:
                    st = make_room_stream(c, b)
                except (RoomError, EspeakError) as e:
                    raise DigitdError(str(e)) from None
                if args.save_stream:
                    out = Path(args.save_stream)
                    write_stream(st, out / f"seed{seed}" if len(stream_seeds) > 1 else out)
                streams[c.name] = (st.audio, [t.to_dict() for t in st.truth])
                synthetic = synthetic and st.synthetic_voices
                prog.advance(task)
            for label, rc in runs:
                for c in conds:
                    prog.update(task, description=f"{c.name}{where}" + (f" ({label})" if len(runs) > 1 else ""))
                    audio, truth = streams[c.name]
                    done[label][c.name].append(run_once(rc, model, audio, truth, speed))
                    prog.advance(task)
                per_seed[label][str(seed)] = combine([done[label][c.name][-1].score for c in conds]).der
            if isinstance(model, Remembered):
                model.forget()
        results = []
        for label, _ in runs:
            r = room_report({name: pool_runs(rs) for name, rs in done[label].items()}, conds, speed)
            r.update(label=label, seed=stream_seeds[0] if len(stream_seeds) == 1 else None,
                     speakers=cfg.bench.room_speakers, microphone=cfg.bench.room_mic, synthetic_voices=synthetic,
                     model=str(model.meta.get("path", "")))
            if len(stream_seeds) > 1:
                ders = list(per_seed[label].values())
                r.update(seeds=stream_seeds, der_per_seed=per_seed[label], der_mean=float(np.mean(ders)))
            results.append(r)
    if not synthetic:
        err.print("digitd: espeak-ng not found: real voices only (no synthetic digits or babble sentences)")
    if args.json:
        print(json.dumps(results[0] if len(results) == 1 else {"sweep": results}, indent=None))
    elif len(results) == 1:
        print_room_table(results[0])
    else:
        print_tables(results)
    return 0


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


SIDE_TITLES = {"unseen": "unseen", "train": "TRAINING-side (tuning)", "dev": "DEV-slice (tuning)",
               "fit": "FIT-side (the dev twin's training voices)"}


def print_room_table(r: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console()
    many = r.get("seeds")
    which = f"seeds {_seed_list(many)} pooled" if many else f"seed {r['seed']}"
    t = Table(title=f"digitd bench --scenario room: {r['mode']} mode, {r['audio_s']:.0f} s of audio, "
                    f"{len(r['by_condition'])} conditions, "
                    f"{SIDE_TITLES[r.get('speakers', 'unseen')]} speakers ({which})"
                    + ("" if r.get("microphone", "flat") == "flat" else f", through a {r['microphone']} microphone"))
    for col in ("condition", "digits", "DER %", "S/D/I", "word FA %", "sound FA", "bg ins/min", "EOS p50/p95 ms", "RTF"):
        t.add_column(col, justify="left" if col == "condition" else "right")

    def row(name: str, m: dict[str, Any], **kw: Any) -> None:
        eos = m["eos_latency_ms"]
        t.add_row(name, str(m["n_truth"]), _pct(m["der"]), f"{m['substitutions']}/{m['deletions']}/{m['insertions']}",
                  f"{_pct(m['fa_rate'])} ({m['word_false_alarms']}/{m['n_words']})",
                  f"{m['sound_false_alarms']}/{m['n_sounds']}", _f(m["background_insertions_per_min"], 1),
                  f"{_f(eos['p50'], 0)} / {_f(eos['p95'], 0)}", _f(m["rtf"], 4), **kw)

    for name, m in r["by_condition"].items():
        row(name, m)
    t.add_section()
    row("overall", r, style="bold")
    con.print(t)
    notes = ("DER = (S+D+I) / digits. word FA = non-digit words that came out as a digit; a digit on a word or "
             "sound is a false alarm, not an insertion. bg ins/min = digits emitted during the background-only "
             "stretches, per minute of them (also counted in I). EOS = truth end of the word -> `emitted`, stream time.")
    if "eos_wall_latency_ms" in r:
        w = r["eos_wall_latency_ms"]
        notes += f" Wall clock end of speech -> digit p50 / p95: {_f(w['p50'], 0)} / {_f(w['p95'], 0)} ms."
    con.print(f"[dim]{notes} Rejected utterances: {r['rejected']}; audio dropped: {r['dropped_ms']:.0f} ms; "
              f"CPU {_f(r['cpu_percent'], 1)}% of one core; peak RSS (pipeline in the bench process) {r['peak_rss_mb']:.0f} MB.[/dim]")
    if many:
        each = " / ".join(f"{100 * d:.2f}" for d in r["der_per_seed"].values())
        con.print(f"DER per seed ({_seed_list(many)}): {each}%; mean {100 * r['der_mean']:.2f}%, "
                  f"pooled {100 * r['der']:.2f}% (the overall row)")


def _seed_list(seeds: Sequence[int]) -> str:
    """0-9 for a run of consecutive seeds, else 0,3,5."""
    s = list(seeds)
    if len(s) > 2 and s == list(range(s[0], s[0] + len(s))):
        return f"{s[0]}-{s[-1]}"
    return ",".join(map(str, s))


def _f(x: float, nd: int = 2) -> str:
    return "-" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.{nd}f}"


def print_tables(results: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console()
    r0 = results[0]
    if len(results) == 1:
        t = Table(title=f"digitd bench: {r0['mode']} mode, {r0['audio_s']:.1f} s of audio, {r0['n_truth']} digits")
        t.add_column("stage")
        for c in ("p50 ms", "p95 ms", "p99 ms", "max ms", "RTF"):
            t.add_column(c, justify="right")
        for k in STAGES:
            s = r0["stages"][k]
            t.add_row(k, _f(s["p50_ms"], 3), _f(s["p95_ms"], 3), _f(s["p99_ms"], 3), _f(s["max_ms"], 3),
                      _f(r0["stage_rtf"].get(k, float("nan")), 5) if k != "total" else "")
        con.print(t)
        s = Table(title="whole pipeline", show_header=False)
        s.add_column("metric")
        s.add_column("value", justify="right")
        rows = [
            ("real-time factor (wall / audio)", _f(r0["rtf"], 5)),
            ("audio seconds per CPU second", _f(r0["audio_s_per_cpu_s"], 0)),
            ("CPU % of one core", _f(r0["cpu_percent"], 1)),
            ("end-of-speech -> digit p50 / p95 (stream)", f"{_f(r0['eos_latency_ms']['p50'], 0)} / {_f(r0['eos_latency_ms']['p95'], 0)} ms"),
        ]
        if "eos_wall_latency_ms" in r0:
            w = r0["eos_wall_latency_ms"]
            rows.append(("end-of-speech -> digit p50 / p95 (wall)", f"{_f(w['p50'], 0)} / {_f(w['p95'], 0)} ms"))
        rows += [
            ("digit error rate (S+D+I)/N", f"{100 * r0['der']:.1f}% ({r0['substitutions']}S {r0['deletions']}D {r0['insertions']}I of {r0['n_truth']})"),
        ]
        if r0["n_words"] or r0["n_sounds"]:
            rows.append(("non-digit words / sounds emitted as a digit",
                         f"{_pct(r0['fa_rate'])}% ({r0['word_false_alarms']} of {r0['n_words']}) / "
                         f"{r0['sound_false_alarms']} of {r0['n_sounds']}"))
        if r0["background_s"]:
            rows.append(("insertions per minute of background only",
                         f"{_f(r0['background_insertions_per_min'], 1)} ({r0['background_insertions']} in {r0['background_s']:.0f} s)"))
        rows += [
            ("numbers exactly right (same pause rule on truth)",
             f"{100 * r0['number_accuracy']:.1f}% ({r0['numbers_correct']} of {r0['n_numbers']})"),
            ("rejected utterances", str(r0["rejected"])),
            ("audio dropped", f"{r0['dropped_ms']:.0f} ms"),
            ("peak RSS (pipeline in the bench process)", f"{r0['peak_rss_mb']:.0f} MB"),
            ("peak RSS (fresh digitd run)", f"{r0['daemon_peak_rss_mb']:.0f} MB"),
            ("cold start (process start -> first frame)", f"{r0['cold_start_s']:.2f} s"),
            ("model load", f"{1000 * r0['model_load_s']:.0f} ms"),
        ]
        for a, b in rows:
            s.add_row(a, b)
        con.print(s)
        return
    where = f"{r0['scenario']} scenario, {len(r0['by_condition'])} conditions pooled, " if "by_condition" in r0 else ""
    t = Table(title=f"digitd bench sweep ({where}{r0['mode']} mode, {r0['audio_s']:.0f} s, {r0['n_truth']} digits)")
    for c in ("setting", "DER %", "S/D/I", "word FA %", "bg ins/min", "rejected", "EOS p50 ms", "EOS p95 ms", "RTF", "CPU %"):
        t.add_column(c, justify="right" if c != "setting" else "left")
    for r in results:
        t.add_row(r["label"], f"{100 * r['der']:.1f}", f"{r['substitutions']}/{r['deletions']}/{r['insertions']}",
                  _pct(r["fa_rate"]), _f(r["background_insertions_per_min"], 1),
                  str(r["rejected"]), _f(r["eos_latency_ms"]["p50"], 0), _f(r["eos_latency_ms"]["p95"], 0),
                  _f(r["rtf"], 5), _f(r.get("cpu_percent"), 1))
    con.print(t)
    if any(r.get("reused_classifications") for r in results):
        con.print("[dim]RTF / CPU after the first setting: the words it cut exactly as an earlier setting did were not "
                  "classified again (reused: " + ", ".join(str(r.get("reused_classifications", 0)) for r in results)
                  + "); the first setting's are the daemon's.[/dim]")

