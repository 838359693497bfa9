"""Shared fixtures: the real FSDD folder (skip cleanly when absent), a model (the shipped one,
else a small one trained here), FSDD streams."""

from __future__ import annotations

import os

# before numpy loads OpenBLAS: one thread, as the CLI runs it (a second thread only contends here)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import re  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _fsdd_or_skip() -> Path:
    from digitd.paths import fsdd_dir

    d = fsdd_dir()
    if not any(d.glob("*_0.wav")):
        pytest.skip(f"FSDD recordings not found at {d} (set DIGITD_FSDD_DIR or run scripts/get-data.sh)")
    return d


@pytest.fixture(scope="session")
def fsdd() -> Path:
    return _fsdd_or_skip()


@pytest.fixture(scope="session")
def fsdd_dir() -> Path:
    return _fsdd_or_skip()


@pytest.fixture(scope="session")
def small_subset(fsdd_dir: Path, tmp_path_factory) -> Path:
    """2 speakers x 10 digits x takes {0,1,5..12}: a real but tiny FSDD-shaped folder (symlinks)."""
    out = tmp_path_factory.mktemp("fsdd_small")
    for spk in ("george", "jackson"):
        for d in range(10):
            for take in (0, 1, *range(5, 13)):
                src = fsdd_dir / f"{d}_{spk}_{take}.wav"
                (out / src.name).symlink_to(src)
    return out


@pytest.fixture(scope="session")
def model_path(tmp_path_factory, fsdd) -> Path:
    """models/default.npz if present and loadable, else a small LR model (takes 5-24)."""
    from digitd.model import ModelError, load_model

    shipped = ROOT / "models" / "default.npz"
    if shipped.is_file():
        try:
            load_model(shipped)
            return shipped
        except ModelError:
            pass
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from digitd.audio import load_wav
    from digitd.features import extract
    from digitd.model import DigitModel, save_model

    X, y = [], []
    for p in sorted(fsdd.glob("*.wav")):
        m = re.match(r"(\d)_\w+_(\d+)\.wav$", p.name)
        if m and 5 <= int(m.group(2)) < 25:
            X.append(extract(load_wav(p)))
            y.append(m.group(1))
    est = make_pipeline(StandardScaler(), LogisticRegression(C=1, max_iter=2000)).fit(np.array(X), y)
    path = tmp_path_factory.mktemp("model") / "default.npz"
    save_model(DigitModel(est, classes=[str(d) for d in range(10)]), path, card={"note": "test fixture"})
    return path


@pytest.fixture(scope="session")
def model(model_path):
    from digitd.model import load_model

    m = load_model(model_path)
    m.warm_up()
    return m


@pytest.fixture(scope="session")
def short_stream(tmp_path_factory, fsdd):
    """(wav path, audio, truth): 8 FSDD test digits, pauses 0.3-1.2 s, 1 s lead-in, ~10 s."""
    from digitd.audio import write_wav
    from digitd.synth import make_stream

    audio, truth = make_stream(8, seed=11, gap_min_s=0.3, gap_max_s=1.2, level_min_db=-10, level_max_db=-3, lead_s=1.0)
    path = tmp_path_factory.mktemp("streams") / "digits.wav"
    write_wav(path, audio)
    return path, audio, truth


NUMBER_LENGTHS = (4, 3, 1, 5, 2, 4)


@pytest.fixture(scope="session")
def number_stream(tmp_path_factory, fsdd):
    """(wav path, audio, truth, truth numbers): numbers as people say them, quick strings of
    FSDD test-split digits (pauses 0.2-0.4 s) separated by 1.4-2.2 s pauses; ~21 s, 19
    digits, 6 numbers (`NUMBER_LENGTHS`)."""
    from digitd.audio import write_wav
    from digitd.synth import make_number_stream

    audio, truth = make_number_stream(NUMBER_LENGTHS, seed=5, level_min_db=-10, level_max_db=-3, lead_s=1.0)
    path = tmp_path_factory.mktemp("streams") / "numbers.wav"
    write_wav(path, audio)
    numbers, k = [], 0
    for n in NUMBER_LENGTHS:
        numbers.append("".join(t.digit for t in truth[k : k + n]))
        k += n
    return path, audio, truth, numbers


@pytest.fixture
def live_ui_run(model):
    """Run a source through the pipeline with the Rich live UI as a sink (its own output
    discarded); returns (ui, the UI's last frame rendered at `width` as plain text)."""
    import io

    from rich.console import Console

    from digitd.config import Config
    from digitd.pipeline import Pipeline
    from digitd.sources import FileSource
    from digitd.ui import LiveUI

    def run(source, width: int = 120):
        p = Pipeline(Config(), model)
        ui = LiveUI(p, Config(), console=Console(file=io.StringIO(), width=120, force_terminal=False))
        p.sinks.append(ui)
        p.run(FileSource(source, "max"))
        out = io.StringIO()
        Console(file=out, width=width).print(ui.render())
        return ui, out.getvalue()

    return run
