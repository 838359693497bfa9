"""A model file is data, never code: a file crafted to run code when unpickled is refused and
never executed, whatever it is named, and the daemon's default paths never unpickle anything."""

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from digitd.model import ModelError, card_path, load_model, sha256_file

ROOT = Path(__file__).resolve().parents[1]


class _Payload:
    """Unpickling this creates a file: the proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _crafted(tmp_path: Path, name: str) -> tuple[Path, Path]:
    marker = tmp_path / "pwned"
    path = tmp_path / name
    path.write_bytes(pickle.dumps({"format": "digitd-model/1", "x": _Payload(marker)}))
    # a card that matches, as an attacker who can write the file can also write its card
    card_path(path).write_text(json.dumps({"sha256": sha256_file(path)}))
    return path, marker


@pytest.mark.parametrize("name", ["evil.joblib", "evil.npz", "evil.bin"])
def test_crafted_pickle_is_refused_and_never_runs(tmp_path, name):
    path, marker = _crafted(tmp_path, name)
    with pytest.raises(ModelError) as e:
        load_model(path)
    assert "\n" not in str(e.value) and str(path) in str(e.value)
    assert not marker.exists()


def test_crafted_pickle_through_every_command(tmp_path, short_stream):
    path, marker = _crafted(tmp_path, "evil.npz")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    for args in (["predict", str(short_stream[0])], ["run", "--input", str(short_stream[0]), "--speed", "max", "--jsonl"],
                 ["bench", "--set", "bench.digits=3"]):
        r = subprocess.run([sys.executable, "-m", "digitd", *args, "--model", str(path)], capture_output=True, text=True,
                           cwd=ROOT, env=env, timeout=120)
        assert r.returncode != 0 and "Traceback" not in r.stderr, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not marker.exists()
    # the same through config.toml's classify.model
    r = subprocess.run([sys.executable, "-m", "digitd", "predict", str(short_stream[0]), "--set", f"classify.model={path}"],
                       capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert r.returncode != 0 and not marker.exists()


AUDIT = """
import sys
unpickled = []
def hook(event, args):
    if event == "pickle.find_class":
        unpickled.append(args)
sys.addaudithook(hook)
import joblib, pickle
joblib.load = pickle.load = pickle.loads = lambda *a, **k: unpickled.append("load") or (_ for _ in ()).throw(RuntimeError("unpickled"))
from digitd.cli import main
code = main(sys.argv[1:])
print("UNPICKLED", len(unpickled), file=sys.stderr)
sys.exit(code)
"""


@pytest.mark.parametrize("args", [["predict", "{clip}"], ["run", "--input", "{wav}", "--speed", "max", "--jsonl"],
                                  ["bench", "--set", "bench.digits=4"]])
def test_default_paths_never_unpickle(args, short_stream, fsdd_dir):
    args = [a.format(clip=fsdd_dir / "3_george_0.wav", wav=short_stream[0]) for a in args]
    r = subprocess.run([sys.executable, "-c", AUDIT, *args], capture_output=True, text=True, cwd=ROOT,
                       env=dict(os.environ, OPENBLAS_NUM_THREADS="1"), timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "UNPICKLED 0" in r.stderr
