"""Per-utterance compute of several models, measured in one run on the same clips.

  python scripts/compare_models.py MODEL.npz [MODEL.npz ...] [--clips 300]

Why: timings from separate runs on a shared 2-core machine differ by more than one model
differs from the next, so a cost ratio is only honest when both models are timed side by side.
Each clip of the FSDD official test split (takes 0-4) is scored by every model in turn, the
order rotating per clip; the time is trim + features + classify, as the daemon's worker does.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import track  # noqa: E402
from rich.table import Table  # noqa: E402

from digitd.audio import load_wav  # noqa: E402
from digitd.model import ModelError, load_model  # noqa: E402
from digitd.paths import fsdd_dir  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--clips", type=int, default=300, help="how many official test clips (default all 300)")
    args = ap.parse_args()
    try:
        models = [load_model(m) for m in args.models]
    except ModelError as e:
        sys.exit(f"compare_models: error: {e}")
    for m in models:
        m.warm_up()
    paths = sorted(p for p in fsdd_dir().glob("*.wav") if int(p.stem.split("_")[2]) <= 4)[: args.clips]
    waves = [load_wav(p) for p in paths]
    ms: list[list[float]] = [[] for _ in models]
    agree = 0
    for i, x in enumerate(track(waves, description="scoring", console=Console(stderr=True))):
        labels = []
        for k in range(len(models)):
            j = (i + k) % len(models)
            t0 = time.perf_counter()
            labels.append(models[j].predict_wave(x).label)
            ms[j].append(1000 * (time.perf_counter() - t0))
        agree += len(set(labels)) == 1
    base = float(np.median(ms[0]))
    table = Table(title=f"trim + features + classify, {len(waves)} clips, one run")
    for col in ("model", "nets", "p50 ms", "p95 ms", "mean ms", "p50 / first"):
        table.add_column(col, justify="right" if col != "model" else "left")
    for path, m, t in zip(args.models, models, ms):
        nets = "-" if m.cnn is None else str(len(m.cnn.nets))
        p50 = float(np.median(t))
        table.add_row(str(Path(path)), nets, f"{p50:.2f}", f"{np.percentile(t, 95):.2f}", f"{np.mean(t):.2f}", f"{p50 / base:.2f}x")
    Console().print(table)
    print(f"all models gave the same label on {agree} of {len(waves)} clips")


if __name__ == "__main__":
    main()
