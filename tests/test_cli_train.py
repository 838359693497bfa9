"""End to end through the CLI on a tiny real subset: train -> eval -> predict agree."""

import json
from pathlib import Path

import pytest

from digitd.cli import main


@pytest.fixture(scope="module")
def trained(small_subset, tmp_path_factory):
    out = tmp_path_factory.mktemp("models")
    rc = main(["train", "--data", str(small_subset), "--classifier", "lr", "--out-dir", str(out), "--name", "tiny", "--jobs", "1"])
    assert rc == 0
    return out / "tiny.npz"


def test_train_writes_model_and_card(trained):
    card = json.loads(trained.with_suffix(".json").read_text())
    assert card["command"].startswith("digitd train --data")
    assert card["data"]["n_train_clips"] == 2 * 10 * 8
    assert card["data"]["speakers"] == ["george", "jackson"]
    assert card["classifier"]["kind"] == "lr" and "C" in card["classifier"]["hyper_params"]["lr"]
    assert card["metrics"]["test"]["n"] == 40
    import joblib

    from digitd.model import load_model

    # the daemon's file holds numpy arrays only; the scikit-learn copy is a file of its own
    assert load_model(trained).estimator is None
    lr = joblib.load(trained.with_suffix(".sklearn.joblib")).members[0]
    small = trained.parent / "lr_only.joblib"
    joblib.dump(lr, small, compress=3)
    assert small.stat().st_size < 50_000  # the LR classifier itself is a few KB
    assert trained.stat().st_size < 1_000_000  # with the digit detector (boosted trees)


def test_eval_and_predict_agree(trained, small_subset, capsys):
    capsys.readouterr()
    assert main(["eval", "--model", str(trained), "--data", str(small_subset), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    test = res["test"]
    assert res["model"] == str(trained) and test["n"] == 40
    test_files = sorted(str(p) for p in small_subset.glob("*_[01].wav"))
    assert len(test_files) == 40
    assert main(["predict", "--model", str(trained), *test_files]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [d["file"] for d in lines] == test_files
    wrong = {d["file"] for d in lines if d["digit"] != Path(d["file"]).name[0]}
    acc = 1 - len(wrong) / len(lines)
    assert acc > 0.6  # chance is 0.1; held-out takes of the two training speakers
    assert wrong == {e["file"] for e in test["errors"]}
    assert test["accuracy"] == pytest.approx(acc)
    assert sum(map(sum, test["confusion"])) == 40
    card = json.loads(trained.with_suffix(".json").read_text())
    assert card["metrics"]["test"]["accuracy"] == pytest.approx(acc)


def test_predict_bad_files_continue(trained, small_subset, tmp_path, capsys):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    good = small_subset / "3_george_0.wav"
    rc = main(["predict", "--model", str(trained), str(bad), str(tmp_path / "missing.wav"), str(good)])
    cap = capsys.readouterr()
    assert rc != 0
    out = [json.loads(line) for line in cap.out.splitlines()]
    assert [d["file"] for d in out] == [str(good)]
    errs = cap.err.strip().splitlines()
    assert len(errs) == 2 and "bad.wav" in errs[0] and "missing.wav" in errs[1]


def test_predict_resamples_stereo_44k(trained, small_subset, tmp_path, capsys):
    import numpy as np
    from scipy.io import wavfile

    from digitd.audio import load_wav, resample

    src = small_subset / "8_jackson_1.wav"
    x = load_wav(src)
    hi = resample(x, 8000, 44100)
    stereo = (np.stack([hi, hi], axis=1) * 32767).astype(np.int16)
    p = tmp_path / "stereo44k.wav"
    wavfile.write(p, 44100, stereo)
    capsys.readouterr()
    assert main(["predict", "--model", str(trained), str(src), str(p)]) == 0
    a, b = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert a["digit"] == b["digit"]


def test_predict_a_folder_reads_its_flac_and_ogg_too(trained, small_subset, tmp_path, capsys):
    """A folder expands to its audio files of every kind digitd reads, not only *.wav; other
    files in it (notes, truth JSON) are left out."""
    import soundfile

    from digitd.audio import load_wav

    x = load_wav(small_subset / "3_george_5.wav")
    soundfile.write(str(tmp_path / "a.flac"), x, 8000)
    soundfile.write(str(tmp_path / "b.ogg"), x, 8000)
    (tmp_path / "c.wav").write_bytes((small_subset / "3_george_5.wav").read_bytes())
    (tmp_path / "notes.txt").write_text("not audio")
    capsys.readouterr()
    assert main(["predict", "--model", str(trained), str(tmp_path)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [Path(r["file"]).name for r in lines] == ["a.flac", "b.ogg", "c.wav"]
    assert len({r["digit"] for r in lines}) == 1


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "nope"), "--out-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("digitd: error:") and "\n" not in err
    assert main(["eval", "--model", str(tmp_path / "none.npz")]) == 2
    assert "model file not found" in capsys.readouterr().err
    for flag, said in (("--cnn-noise=white,hum", "train.cnn_noise: unknown ['hum']"),
                       ("--cnn-snr=5,loud", "train.cnn_snr_db: '5,loud' is not a comma list"),
                       ("--speed-range=0.9", "train.speed_range: '0.9' is not LO,HI"),
                       ("--speed-range=1.2,0.8", "need 0.5 <= LO <= HI <= 2"),
                       ("--embed-head-low-snr=-6", "train.embed_head_low_snr: '-6' is not LO,HI"),
                       ("--embed-head-low-snr=6,-6", "need -30 <= LO <= HI <= 40"),
                       ("--embed-head-low-kinds=babble,hum",
                        "train.embed_head_low_kinds: unknown ['hum'] (choose from recorded, babble, white, pink)"),
                       ("--embed-head-low-kinds=,", "train.embed_head_low_kinds: empty (choose from recorded, babble, white, pink)")):
        assert main(["train", "--cnn", flag, "--out-dir", str(tmp_path)]) == 2
        err = capsys.readouterr().err.strip()
        assert said in err and "\n" not in err


def test_eval_robustness_reports(trained, small_subset, capsys):
    capsys.readouterr()
    rc = main(["eval", "--model", str(trained), "--data", str(small_subset), "--json", "--conditions", "--open-set",
               "--reject-threshold", "0.4", "--jobs", "1"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    cond = res["conditions"]
    assert cond["clean"] == pytest.approx(res["test"]["accuracy"])  # same clips, same path, no change
    assert {"white 10 dB", "babble 5 dB", "gain x10", "pad 300 ms", "speed x0.9"} <= set(cond)
    assert all(0.0 <= v <= 1.0 for v in cond.values())
    # heavy noise cannot help a model trained on clean audio
    assert cond["white 5 dB"] <= cond["clean"]
    o = res["open_set"]
    assert o["threshold"] == 0.4 and o["n_digits"] == 40
    assert set(o["rejected"]) == {"noise", "click", "cough", "non-digit words"}
    assert o["rejected"]["non-digit words"]["n"] == 32
    # a higher threshold never rejects fewer clips
    rates = [s["digits_rejected"] for s in o["sweep"]]
    assert rates == sorted(rates)


def test_train_card_has_reject_threshold(trained):
    card = json.loads(trained.with_suffix(".json").read_text())
    assert 0.0 <= card["reject_threshold"] <= 1.0
    assert card["data"]["n_garbage_clips"] >= 200


def test_hf_unreachable_is_one_line(tmp_path):
    pytest.importorskip("datasets")
    import os
    import subprocess
    import sys

    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    root = Path(__file__).resolve().parents[1]
    p = subprocess.run([sys.executable, "-m", "digitd", "train", "--hf", "--out-dir", str(tmp_path)],
                       cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    err = p.stderr.strip()
    assert err.startswith("digitd: error:") and "mteb/free-spoken-digit-dataset" in err
    assert "\n" not in err and "Traceback" not in err


def test_clean_svm_without_aug_says_so_and_trains(small_subset, tmp_path, capsys):
    rc = main(["train", "--data", str(small_subset), "--classifier", "lr", "--clean-svm", "--out-dir", str(tmp_path),
               "--name", "t", "--jobs", "1"])
    assert rc == 0
    assert "--clean-svm adds nothing without --aug" in capsys.readouterr().err
    card = json.loads((tmp_path / "t.json").read_text())
    assert card["recipe"]["clean_svm"] is True and "svm_clean" not in card["classifier"]["hyper_params"]


def test_eval_record_writes_the_card_and_model_still_loads(trained, small_subset, tmp_path, capsys):
    import shutil

    from digitd.model import load_model

    model = tmp_path / "rec.npz"
    shutil.copy(trained, model)
    shutil.copy(trained.with_suffix(".json"), model.with_suffix(".json"))
    assert main(["eval", "--model", str(model), "--data", str(small_subset), "--conditions", "--jobs", "1", "--record"]) == 0
    card = json.loads(model.with_suffix(".json").read_text())
    ev = card["eval"]
    assert ev["command"].startswith("digitd eval --model") and "--record" in ev["command"]
    assert ev["test"]["n"] == 40 and "confusion" not in ev["test"]
    assert ev["conditions"]["clean"] == pytest.approx(ev["test"]["accuracy"])
    assert card["sha256"] == json.loads(trained.with_suffix(".json").read_text())["sha256"]
    assert load_model(model).classes == [str(d) for d in range(10)]
    # a second --record adds its sections and keeps the first one's, each with its own command
    first = ev["command"]
    assert main(["eval", "--model", str(model), "--data", str(small_subset), "--jobs", "1", "--record"]) == 0
    ev2 = json.loads(model.with_suffix(".json").read_text())["eval"]
    assert ev2["conditions"] == ev["conditions"] and ev2["measured_by"]["conditions"] == first
    assert ev2["measured_by"]["test"] == ev2["command"] != first and "--conditions" not in ev2["command"]
