"""digitd.embedding: the numpy port of openWakeWord's melspectrogram + speech_embedding graphs.

Two groups:
- against onnxruntime (skipped when onnxruntime or the openwakeword ONNX files are missing):
  same mel spectrogram and embeddings on real FSDD clips and noise, and a set of deliberately
  broken ports (one conv's padding shifted, a kernel flipped, a wrong constant) that the same
  tolerances must reject, so the comparison is known to be able to fail;
- always: the shipped npz, `pooled` shapes/determinism, error messages, and a weak check that
  the vectors separate digits on real clips.

Tolerances (measured with onnxruntime 1.32 on x86-64: mel 4e-6, embeddings 9e-7 x scale):
- mel (after x / 10 + 2) 1e-4, i.e. 0.001 dB: float32 rounding of a 512-term product and a log
  is ~1e-6; the smallest constant error tried (log divisor 2.3026 -> 2.30, 0.1 %) gives 1e-2;
- embeddings 1e-5 x max |embedding| (~7e-4 on values up to ~75): 20 float32 layers summed in a
  different order by BLAS drift ~1e-6 relative; a shifted padding, a flipped kernel or a dropped
  bias gives 0.17..0.55 x scale, a LeakyRelu alpha of 0.21 0.03, and the smallest error tried
  (batch-norm epsilon 1e-3 -> 1e-5) 1.4e-3. The broken-port tests require > 10 x the tolerance.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from digitd.embedding import (CLIP_SAMPLES, EMBED_DIM, POOLED_DIM, WINDOW_STEP, SpeechEmbedding, default_path,
                              fit_clip, upsample2)

ROOT = Path(__file__).resolve().parents[1]
NPZ = ROOT / "models" / "speech_embedding.npz"
MEL_TOL = 1e-4
EMB_REL_TOL = 1e-5
CLIPS = ("0_george_0", "3_jackson_1", "5_lucas_2", "7_theo_3", "8_nicolas_4", "9_yweweler_0")


@pytest.fixture(scope="module", autouse=True)
def _one_blas_thread():
    """Single-threaded BLAS, as the daemon runs it (digitd/cli.py): on 2 busy cores a threaded
    BLAS makes these small products stall for seconds."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def se() -> SpeechEmbedding:
    return SpeechEmbedding.load(NPZ)


def _oww_source() -> Path | None:
    """A folder with the two ONNX files or an openwakeword wheel: $DIGITD_OWW_MODELS, an installed
    openwakeword package, or the unzipped/downloaded 0.4.0 wheel under /tmp/oww."""
    cands: list[Path] = []
    if os.environ.get("DIGITD_OWW_MODELS"):
        cands.append(Path(os.environ["DIGITD_OWW_MODELS"]))
    spec = importlib.util.find_spec("openwakeword")
    if spec is not None and spec.origin:
        cands.append(Path(spec.origin).parent / "resources" / "models")
    cands.append(Path("/tmp/oww/openwakeword/resources/models"))
    cands += sorted(Path("/tmp/oww").glob("openwakeword-*.whl")) if Path("/tmp/oww").is_dir() else []
    for c in cands:
        if (c / "melspectrogram.onnx").is_file() and (c / "embedding_model.onnx").is_file():
            return c
        if c.is_file() and zipfile.is_zipfile(c):
            return c
    return None


@pytest.fixture(scope="module")
def oww_src() -> Path:
    src = _oww_source()
    if src is None:
        pytest.skip("openwakeword ONNX files not found (set DIGITD_OWW_MODELS to a folder or wheel)")
    return src


@pytest.fixture(scope="module")
def ort_run(oww_src):
    """(melspec(x) -> (frames, 32) after x / 10 + 2, embed(windows) -> (n, 96)) by onnxruntime."""
    ort = pytest.importorskip("onnxruntime")
    from train.export_embedding import read_models

    mel_bytes, emb_bytes = read_models(oww_src)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    mel_s = ort.InferenceSession(mel_bytes, opts, providers=["CPUExecutionProvider"])
    emb_s = ort.InferenceSession(emb_bytes, opts, providers=["CPUExecutionProvider"])

    def melspec(x: np.ndarray) -> np.ndarray:  # as openwakeword.utils.AudioFeatures._get_melspectrogram
        return np.squeeze(mel_s.run(None, {"input": x[None].astype(np.float32)})[0]) / 10 + 2

    def embed(w: np.ndarray) -> np.ndarray:  # as _get_embeddings: (n, 76, 32, 1) -> (n, 1, 1, 96)
        return emb_s.run(None, {"input_1": w[..., None].astype(np.float32)})[0].reshape(len(w), EMBED_DIM)

    return melspec, embed


def _to16k(x8k: np.ndarray) -> np.ndarray:
    from scipy.signal import resample_poly

    return resample_poly(fit_clip(x8k), 2, 1).astype(np.float32) * np.float32(32767)


@pytest.fixture(scope="module")
def audio16k(fsdd) -> dict[str, np.ndarray]:
    """16 kHz int16-scaled inputs: FSDD clips as `pooled` prepares them, plus raw noise of odd lengths."""
    from digitd.audio import load_wav

    rng = np.random.default_rng(7)
    out = {name: _to16k(load_wav(fsdd / f"{name}.wav")) for name in CLIPS}
    out["white_full_scale"] = rng.uniform(-32767, 32767, 16000 + 333).astype(np.float32)
    out["gauss_quiet_3s"] = (rng.standard_normal(48000) * 30).astype(np.float32)
    out["noise_clip"] = _to16k(rng.uniform(-0.2, 0.2, 5000).astype(np.float32))
    return out


# ---- against onnxruntime -----------------------------------------------------------------------


def test_melspec_matches_onnxruntime(se, ort_run, audio16k):
    ort_mel, _ = ort_run
    for name, x in audio16k.items():
        ref, got = ort_mel(x), se.melspec(x)
        assert got.dtype == np.float32 and got.shape == ref.shape == ((len(x) - 512) // 160 + 1, 32), name
        assert np.abs(got - ref).max() < MEL_TOL, name


def test_embeddings_match_onnxruntime(se, ort_run, audio16k):
    ort_mel, ort_embed = ort_run
    for name, x in audio16k.items():
        mel = ort_mel(x)
        wins = se.windows(mel)
        ref = ort_embed(wins)
        tol = EMB_REL_TOL * np.abs(ref).max()
        assert np.abs(se.embed(wins) - ref).max() < tol, name
        assert np.abs(se.embed_mel(mel) - ref).max() < tol, name  # the one-pass path


def test_pooled_matches_onnxruntime_pipeline(se, ort_run, fsdd):
    """The whole recipe, with the two graphs swapped for onnxruntime."""
    from digitd.audio import load_wav

    ort_mel, ort_embed = ort_run
    for name in CLIPS[:3]:
        x = load_wav(fsdd / f"{name}.wav")
        emb = ort_embed(se.windows(ort_mel(_to16k(x))))
        ref = np.concatenate([emb.mean(0), emb.max(0), emb[len(emb) // 2]])
        assert np.abs(se.pooled(x) - ref).max() < EMB_REL_TOL * np.abs(ref).max(), name


BROKEN_EMB = {  # each breaks one thing the port must get right; the tolerance must notice
    "conv 5 padding shifted": lambda a: {"emb_conv_05_pads": np.array([0, 2, 0, 0])},
    "conv 17 padding shifted": lambda a: {"emb_conv_17_pads": np.array([0, 0, 0, 2])},
    "input padding shifted": lambda a: {"emb_input_pad": np.array([0, 2, 0, 0])},
    "conv 0 kernel flipped in time": lambda a: {"emb_conv_00_w": a["emb_conv_00_w"][:, :, ::-1].copy()},
    "conv 12 kernel flipped in time": lambda a: {"emb_conv_12_w": a["emb_conv_12_w"][:, :, ::-1].copy()},
    "conv 10 bias dropped": lambda a: {"emb_conv_10_b": np.zeros_like(a["emb_conv_10_b"])},
    "batch-norm epsilon 1e-5": lambda a: {"emb_bn_00_eps": np.float32(1e-5)},
    "LeakyRelu alpha 0.21": lambda a: {"emb_leaky_alpha": np.float32(0.21)},
    "activation floor -0.5": lambda a: {"emb_act_floor": np.float32(-0.5)},
}
BROKEN_MEL = {
    "top_db 70": lambda a: {"mel_top_db": np.float32(70.0)},
    "log divisor 2.30": lambda a: {"mel_log_div": np.float32(2.30)},
    "filterbank off by one bin": lambda a: {"mel_filterbank": np.roll(a["mel_filterbank"], 1, axis=0)},
}


@pytest.mark.parametrize("what", list(BROKEN_EMB))
def test_comparison_rejects_a_broken_embedding(what, ort_run, audio16k):
    ort_mel, ort_embed = ort_run
    arrays = dict(np.load(NPZ, allow_pickle=False))
    broken = SpeechEmbedding({**arrays, **BROKEN_EMB[what](arrays)})
    wins = broken.windows(ort_mel(audio16k["7_theo_3"]))
    ref = ort_embed(wins)
    assert np.abs(broken.embed(wins) - ref).max() > 10 * EMB_REL_TOL * np.abs(ref).max()


@pytest.mark.parametrize("what", list(BROKEN_MEL))
def test_comparison_rejects_a_broken_melspec(what, ort_run, audio16k):
    ort_mel, _ = ort_run
    arrays = dict(np.load(NPZ, allow_pickle=False))
    broken = SpeechEmbedding({**arrays, **BROKEN_MEL[what](arrays)})
    x = audio16k["7_theo_3"]
    assert np.abs(broken.melspec(x) - ort_mel(x)).max() > 10 * MEL_TOL


def test_exporter_reproduces_the_shipped_npz(oww_src):
    pytest.importorskip("onnx")
    from train.export_embedding import export

    arrays, _ = export(oww_src)
    with np.load(NPZ, allow_pickle=False) as z:
        assert sorted(z.files) == sorted(arrays)
        for k in z.files:
            assert z[k].dtype == arrays[k].dtype and np.array_equal(z[k], arrays[k]), k


def _set_attr(model, op: str, nth: int, name: str, value) -> None:
    """Overwrite attribute `name` of the nth `op` node (adding it if absent)."""
    import onnx

    node = [n for n in model.graph.node if n.op_type == op][nth]
    for a in list(node.attribute):
        if a.name == name:
            node.attribute.remove(a)
    node.attribute.append(onnx.helper.make_attribute(name, value))


GRAPH_EDITS = {  # graph changes the port would get wrong and the npz does not record: the exporter refuses them
    "grouped conv": ("emb", "Conv", 2, "group", 2, "group"),
    "conv stride 2": ("emb", "Conv", 5, "strides", [1, 2], "strides"),
    "conv dilation": ("emb", "Conv", 7, "dilations", [2, 1], "dilations"),
    "one LeakyRelu alpha differs": ("emb", "LeakyRelu", 4, "alpha", 0.3, "alphas"),
    "overlapping max-pool": ("emb", "MaxPool", 0, "strides", [1, 1], "pool"),
    "max-pool ceil mode": ("emb", "MaxPool", 1, "ceil_mode", 1, "ceil_mode"),
    "STFT padding": ("mel", "Conv", 0, "pads", [256, 256], "pads"),
    "ReduceMax over one axis": ("mel", "ReduceMax", 0, "axes", [1], "axes"),
}


@pytest.mark.parametrize("what", list(GRAPH_EDITS))
def test_exporter_refuses_graphs_the_port_does_not_implement(what, oww_src):
    onnx = pytest.importorskip("onnx")
    from train.export_embedding import ExportError, embedding_arrays, mel_arrays, read_models

    which, op, nth, name, value, msg = GRAPH_EDITS[what]
    mel_bytes, emb_bytes = read_models(oww_src)
    model = onnx.load_from_string(emb_bytes if which == "emb" else mel_bytes)
    _set_attr(model, op, nth, name, value)
    with pytest.raises(ExportError, match=msg):
        (embedding_arrays if which == "emb" else mel_arrays)(model)


# ---- always ----------------------------------------------------------------------------------


def test_shipped_npz_is_plain_arrays():
    assert default_path() == NPZ
    assert NPZ.stat().st_size < 2_500_000
    with np.load(NPZ, allow_pickle=False) as z:
        assert all(z[k].dtype in (np.float32, np.int64) for k in z.files)
    assert (ROOT / "models" / "speech_embedding.NOTICE.md").is_file()


def test_frame_and_window_counts(se):
    """openWakeWord: (n - 512) // 160 + 1 frames (97 per second), 76-frame windows every 8."""
    assert se.melspec(np.zeros(16000, np.float32)).shape == (97, 32)
    mel = se.melspec(np.ones(2 * CLIP_SAMPLES, np.float32))  # what pooled feeds it: 1.6 s at 16 kHz
    assert mel.shape == (157, 32)
    assert se.windows(mel).shape == (11, 76, 32)
    assert se.windows(mel[:75]).shape == (0, 76, 32)
    assert se.stride == WINDOW_STEP


def test_one_pass_equals_window_by_window(se):
    rng = np.random.default_rng(3)
    mel = se.melspec((rng.standard_normal(30000) * 3000).astype(np.float32))
    ref = se.embed(se.windows(mel))
    assert ref.shape == ((len(mel) - 76) // 8 + 1, EMBED_DIM)
    for step in (8, 16, 5):  # 5: not a multiple of the network's stride, falls back to windows
        got, want = se.embed_mel(mel, step), se.embed(se.windows(mel, step))
        assert got.shape == want.shape and np.abs(got - want).max() < EMB_REL_TOL * np.abs(want).max()


@pytest.mark.parametrize("kh,kw,pad", [(3, 3, (1, 1)), (1, 3, (1, 1)), (3, 1, (0, 0)), (3, 1, (2, 0))])
def test_convolution_windows_equal_a_direct_sum(kh, kw, pad):
    """_conv's strided im2col view (kept rows ordered kernel-row, kernel-col, channel, as the
    weights are) is the convolution written out term by term, also on the stride-0 rows that
    `_conv_live` hands it for the silent padding; always run, not only beside onnxruntime."""
    from digitd.embedding import _conv, _Layer

    rng = np.random.default_rng(kh * 10 + kw + pad[0])
    n, t, f, c, o = 2, 9, 7, 4, 5
    w = rng.standard_normal((kh * kw * c, o)).astype(np.float32)
    layer = _Layer(w, np.zeros(o, np.float32), kh, kw, pad[0], pad[1], None, False, None)

    def direct(x: np.ndarray) -> np.ndarray:
        xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), pad, (0, 0)))
        to, fo = xp.shape[1] - kh + 1, xp.shape[2] - kw + 1
        out = np.zeros((x.shape[0], to, fo, o))
        for i in range(kh):
            for j in range(kw):
                out += np.einsum("ntfc,co->ntfo", xp[:, i : i + to, j : j + fo], w[(i * kw + j) * c : (i * kw + j + 1) * c])
        return out

    x = rng.standard_normal((n, t, f, c)).astype(np.float32)
    assert np.allclose(_conv(x, layer), direct(x), atol=1e-4)
    row = np.broadcast_to(x[:1, :1], (1, kh + 2, f, c))  # one row repeated, as _conv_live passes it
    assert np.allclose(_conv(row, layer), direct(np.ascontiguousarray(row)), atol=1e-4)


def test_fft_melspec_equals_the_graphs_matrix_product(se):
    """The STFT matrix is a windowed DFT, so the port uses an FFT; the product gives the same mel."""
    assert se._fft_window is not None
    rng = np.random.default_rng(5)
    x = (rng.standard_normal(12000) * 3000).astype(np.float32)
    fft = se.melspec(x)
    se_mm = SpeechEmbedding.load(NPZ)
    se_mm._fft_window = None  # the graph's own matrix product
    assert np.abs(fft - se_mm.melspec(x)).max() < MEL_TOL


def test_a_matrix_that_is_not_a_windowed_dft_keeps_the_product():
    from digitd.embedding import _dft_window

    with np.load(NPZ) as z:
        real, imag = z["mel_stft_real"], z["mel_stft_imag"]
    assert _dft_window(real, imag) is not None
    assert _dft_window(real, -imag) is None  # the other sign convention
    bent = real.copy()
    bent[7, 100] += 0.01 * np.abs(real).max()
    assert _dft_window(bent, imag) is None


@pytest.mark.parametrize("seconds", [0.0, 0.1, 0.35, 0.8, 1.2, 1.55, 1.6, 2.5])
def test_skipping_the_silent_padding_changes_nothing(se, seconds):
    """A short word is centred in 1.6 s of zeros: the rows of silence are convolved once, not per
    row. The window embeddings equal the full pass over every row."""
    from digitd.embedding import fit_clip, upsample2

    rng = np.random.default_rng(int(seconds * 100))
    n = int(seconds * 8000)
    x = (0.3 * rng.standard_normal(n) * np.hanning(n)).astype(np.float32)
    up = upsample2(fit_clip(x)) * np.float32(32767)
    mel, live = se._melspec(up)
    full = se.embed_mel(mel)  # no live rows given: every row computed
    got = se.clip_windows(x)
    assert got.shape == full.shape == (11, EMBED_DIM)
    assert np.abs(got - full).max() <= EMB_REL_TOL * max(np.abs(full).max(), 1.0)
    if 0 < seconds < 1.2:  # silence on both sides: only the word's rows are live
        assert 0 < live[0] < live[1] < len(mel)
    if seconds >= 1.6:
        assert live == (0, len(mel))


@pytest.mark.parametrize("seconds", [0.0, 0.05, 0.4, 1.6, 3.0])
def test_pooled_shape_and_determinism(se, seconds):
    rng = np.random.default_rng(int(seconds * 10))
    n = int(seconds * 8000)
    x = (0.3 * rng.standard_normal(n) * np.hanning(n)).astype(np.float32) if n else np.zeros(0, np.float32)
    v = se.pooled(x)
    assert v.shape == (POOLED_DIM,) and v.dtype == np.float32 and np.all(np.isfinite(v))
    assert np.array_equal(v, se.pooled(x.copy()))


def test_pooled_silence_and_gain(se):
    silent = se.pooled(np.zeros(8000, np.float32))
    assert silent.shape == (POOLED_DIM,) and np.all(np.isfinite(silent))
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(6000)).astype(np.float32)
    assert np.allclose(se.pooled(x), se.pooled(5 * x), atol=1e-3)  # peak-normalised


def test_fit_clip_centres_short_and_keeps_the_loudest_window():
    short = fit_clip(np.full(1001, 0.5, np.float32))
    assert short.shape == (CLIP_SAMPLES,) and short.max() == 1.0
    left = (CLIP_SAMPLES - 1001) // 2
    assert short[left] == 1.0 and short[left - 1] == 0.0 and short[left + 1001] == 0.0 and short[left + 1000] == 1.0
    x = np.full(24000, 0.01, np.float32)
    x[18000:20000] = 0.8  # the word near the end of a 3 s clip
    out = fit_clip(x)
    assert out.shape == (CLIP_SAMPLES,) and np.count_nonzero(out == 1.0) == 2000
    with pytest.raises(ValueError, match="NaN"):
        fit_clip(np.array([0.0, np.nan], np.float32))


def test_same_digit_closer_than_other_digits(se, fsdd):
    """Weak sanity check on real speech: one speaker, 3 takes of each digit."""
    from digitd.audio import load_wav

    vecs, digits = [], []
    for d in range(10):
        for take in range(3):
            vecs.append(se.pooled(load_wav(fsdd / f"{d}_jackson_{take}.wav")))
            digits.append(d)
    v = np.array(vecs, dtype=np.float64)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    cos = v @ v.T
    dg = np.array(digits)
    same = (dg[:, None] == dg[None]) & ~np.eye(len(dg), dtype=bool)
    assert cos[same].mean() > cos[dg[:, None] != dg[None]].mean() + 0.03  # measured 0.965 vs 0.860


def test_load_errors_are_one_line(tmp_path):
    arrays = dict(np.load(NPZ, allow_pickle=False))
    cases = {
        "missing key 'emb_conv_07_w'": {k: v for k, v in arrays.items() if k != "emb_conv_07_w"},
        "'mel_filterbank' has shape": {**arrays, "mel_filterbank": arrays["mel_filterbank"][:, :5].T},
        "'emb_conv_03_w' has shape": {**arrays, "emb_conv_03_w": arrays["emb_conv_03_w"][:, :7]},
        "conv 3 pads in time": {**arrays, "emb_conv_03_pads": np.array([1, 1, 1, 1])},  # stored, refused here
        "format 2": {**arrays, "format": np.array(2)},
    }
    for msg, a in cases.items():
        p = tmp_path / "bad.npz"
        np.savez(p, **a)
        with pytest.raises(ValueError, match=msg) as e:
            SpeechEmbedding.load(p)
        assert "\n" not in str(e.value)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    for p in (tmp_path / "junk.npz", tmp_path / "absent.npz"):
        with pytest.raises(ValueError, match="cannot read") as e:
            SpeechEmbedding.load(p)
        assert "\n" not in str(e.value)
    np.savez(tmp_path / "pickled.npz", **{**arrays, "format": np.array([object()], dtype=object)})
    with pytest.raises(ValueError, match="cannot read"):
        SpeechEmbedding.load(tmp_path / "pickled.npz")


def test_input_checks(se):
    with pytest.raises(ValueError, match="at least 512"):
        se.melspec(np.zeros(100, np.float32))
    with pytest.raises(ValueError, match="expected"):
        se.embed(np.zeros((2, 75, 32), np.float32))
    assert se.embed(np.zeros((0, 76, 32), np.float32)).shape == (0, EMBED_DIM)


@pytest.mark.parametrize("n", [1, 7, 19, 20, 21, 4000, CLIP_SAMPLES])
def test_upsample2_equals_resample_poly(n):
    """The numpy 8 -> 16 kHz resampler is scipy's resample_poly(x, 2, 1) to float32 rounding."""
    from scipy.signal import firwin, resample_poly

    from digitd.embedding import _TAPS

    np.testing.assert_array_equal(_TAPS, firwin(41, 0.5, window=("kaiser", 5.0)).astype(np.float32) * np.float32(2))
    x = np.random.default_rng(n).uniform(-1, 1, n).astype(np.float32)
    want = resample_poly(x, 2, 1)
    got = upsample2(x)
    assert got.dtype == np.float32 and got.shape == want.shape == (2 * n,)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_runtime_never_imports_onnx():
    code = ("import sys, numpy as np; from digitd.embedding import SpeechEmbedding; "
            "v = SpeechEmbedding.load().pooled(np.zeros(4000, np.float32)); "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('onnx', 'onnxruntime', 'torch') or m == 'scipy.signal']; "
            "print(v.shape, bad); sys.exit(1 if bad else 0)")
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
