"""`digitd eval --unseen` and `digitd predict`'s rejection, on real clips of unseen speakers:
the two commands must agree clip by clip, since they run the same model and threshold."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from digitd.corpora import CORPORA, available, corpus_clips, shared_dir

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> Path:
    """A few unseen-speaker clips of each corpus, in folders named like the real ones."""
    src = available(shared_dir())
    if len(src) < 4:
        pytest.skip("the extra corpora are not all here")
    out = tmp_path_factory.mktemp("corpora")
    for name, path in src.items():
        (out / name).mkdir()
        picked = [c for c in corpus_clips(path, CORPORA[name]) if c.unseen][:: 23 if CORPORA[name] == "digit" else 60][:16]
        for c in picked:
            (out / name / c.path.name).symlink_to(c.path)
    return out


def _run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "digitd", *args], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=600)


def test_eval_unseen_json_matches_predict(corpora, fsdd_dir):
    r = _run("eval", "--unseen", "--corpora", str(corpora), "--data", str(fsdd_dir), "--json")
    assert r.returncode == 0, r.stderr
    u = json.loads(r.stdout)["unseen"]
    for key in ("accuracy", "balanced_accuracy", "n", "words_rejected", "noise_rejected", "digits_rejected"):
        assert key in u
    digits = sorted(p for d in ("speech-commands-digits", "audiomnist-digits") for p in (corpora / d).glob("*.wav"))
    assert u["n"] == len(digits) and set(u["per_corpus"]) == {"speech-commands-digits", "audiomnist-digits"}
    p = _run("predict", *map(str, digits), *map(str, sorted((corpora / "speech-commands-words").glob("*.wav"))),
             *map(str, sorted((corpora / "speech-commands-noise").glob("*.wav"))))
    assert p.returncode == 0, p.stderr
    lines = [json.loads(line) for line in p.stdout.splitlines()]
    by_kind: dict[str, list[dict]] = {}
    for line in lines:
        kind = "digit" if Path(line["file"]).name[0].isdigit() else "noise" if "noise" in line["file"] else "word"
        by_kind.setdefault(kind, []).append(line)
    right = [line["digit"] == Path(line["file"]).name[0] for line in by_kind["digit"]]
    assert u["accuracy"] == pytest.approx(sum(right) / len(right))
    for kind, key in (("digit", "digits_rejected"), ("word", "words_rejected"), ("noise", "noise_rejected")):
        rejected = [bool(line.get("rejected")) for line in by_kind[kind]]
        assert u[key] == pytest.approx(sum(rejected) / len(rejected)), kind
    # a rejected line says why, and keeps digit and confidence
    for line in lines:
        assert {"digit", "confidence"} <= set(line)
        if line.get("rejected"):
            assert line["reason"] in ("unvoiced", "low_confidence")


def test_eval_unseen_without_corpora_is_one_line(tmp_path, fsdd_dir):
    r = _run("eval", "--unseen", "--corpora", str(tmp_path), "--data", str(fsdd_dir))
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and str(tmp_path) in r.stderr
