"""Google's speech_embedding (as converted by openWakeWord) run with numpy alone.

Why: a 96-value embedding per 0.76 s window, trained by Google on a large speech corpus, is a
far richer description of a spoken word than hand-made features, and openWakeWord ships it as
two small ONNX graphs. The daemon must not depend on onnxruntime, so train/export_embedding.py
turns the graphs into plain arrays (models/speech_embedding.npz, attribution in
models/speech_embedding.NOTICE.md) and this module re-implements the few ops they use.
tests/test_embedding.py checks it against onnxruntime.

Pipeline (16 kHz audio scaled like int16):
  melspec: STFT as a 512-tap, hop-160 matrix product -> power -> 32 mel bands -> 10 log10 ->
           clipped to max - 80 dB -> x / 10 + 2 (openWakeWord's transform, not in the graph);
  embed:   per 76-frame window: 20 convolutions (3x3, then alternating 1x3 / 3x1), LeakyRelu
           floored by a Max, 5 max-pools -> 96 values.

Speed: every convolution is an im2col + one float32 matrix product. No layer pads in time and
the time pools multiply to 8 (= WINDOW_STEP), so the embeddings of all windows at step 8 are
exactly one pass of the network over the whole spectrogram (`embed_mel`); that shares the
~90 % overlap between neighbouring windows instead of recomputing it. A word shorter than the
1.6 s clip sits in zeros, whose mel rows are all one constant row: each layer convolves only the
rows that can see the word and copies one computed row into the rest (`_conv_live`; a 0.4 s
word costs ~40 % less). The STFT matrix is a windowed DFT, so it runs as an FFT.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
from numpy.lib.stride_tricks import as_strided, sliding_window_view

from digitd import SAMPLE_RATE

CLIP_SECONDS = 1.6  # `pooled` centres (or crops) every utterance to this length
CLIP_SAMPLES = int(round(CLIP_SECONDS * SAMPLE_RATE))  # at the daemon's 8 kHz
WINDOW_STEP = 8  # mel frames between embedding windows (openWakeWord's step)
INT16_SCALE = 32767.0  # the graphs take float audio scaled like int16
EMBED_DIM = 96
POOLED_DIM = 3 * EMBED_DIM  # [mean, max, middle window]
FORMAT_VERSION = 1
NPZ_NAME = "speech_embedding.npz"


def default_path() -> Path:
    """models/speech_embedding.npz in a checkout, digitd/_models/ in a wheel."""
    here = Path(__file__).resolve().parent
    for d in (here / "_models", here.parent / "models"):
        if (d / NPZ_NAME).is_file():
            return d / NPZ_NAME
    return here.parent / "models" / NPZ_NAME


@dataclass(frozen=True)
class _Layer:
    """One conv block; weights pre-arranged for im2col (rows ordered kernel-row, kernel-col, channel)."""

    w: np.ndarray  # (kh * kw * cin, cout) float32
    b: np.ndarray  # (cout,) float32
    kh: int
    kw: int
    pad_l: int  # zero columns (mel bands) added left / right; time is never padded
    pad_r: int
    bn: tuple[np.ndarray, np.ndarray] | None  # ReLU then x * scale + shift (batch norm folded)
    act: bool  # max(x, alpha x) then max(., floor)
    pool: tuple[int, int] | None  # non-overlapping max-pool (time, bands)


def _arr(arrays: Mapping[str, np.ndarray], key: str, shape: tuple[int | None, ...], kind: str) -> np.ndarray:
    """arrays[key] with the expected rank/shape (None = any) and dtype kind, else ValueError."""
    if key not in arrays:
        raise ValueError(f"speech embedding arrays: missing key {key!r}")
    a = np.asarray(arrays[key])
    if a.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, a.shape)):
        raise ValueError(f"speech embedding arrays: {key!r} has shape {a.shape}, expected {shape}")
    if a.dtype.kind not in kind:
        raise ValueError(f"speech embedding arrays: {key!r} has dtype {a.dtype}")
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        raise ValueError(f"speech embedding arrays: {key!r} has NaN or infinite values")
    return a


class SpeechEmbedding:
    """The melspectrogram + speech_embedding graphs as numpy arrays (immutable, thread-safe)."""

    def __init__(self, arrays: Mapping[str, np.ndarray]):
        """Validate and pre-arrange the exported arrays (see train/export_embedding.py for the layout)."""
        fmt = _arr(arrays, "format", (), "iu")
        if int(fmt) != FORMAT_VERSION:
            raise ValueError(f"speech embedding arrays: format {int(fmt)}, this code reads {FORMAT_VERSION}")
        real = _arr(arrays, "mel_stft_real", (None, None), "f")
        imag = _arr(arrays, "mel_stft_imag", real.shape, "f")
        self.n_fft = real.shape[1]
        self.fbank = np.ascontiguousarray(_arr(arrays, "mel_filterbank", (real.shape[0], None), "f"), dtype=np.float32)
        self.bands = self.fbank.shape[1]
        # One (n_fft, 2 * bins) matrix: frames @ stft gives real and imaginary parts in one product.
        self.stft = np.ascontiguousarray(np.concatenate([real, imag]).T, dtype=np.float32)
        # The graph's matrix is a windowed DFT (row 0 of its real part is the window): when it is,
        # an FFT of the windowed frames gives the same power at ~1/3 of the product's cost.
        self._fft_window = _dft_window(real, imag)
        self.hop = int(_arr(arrays, "mel_hop", (), "iu"))
        self.amin = np.float32(_arr(arrays, "mel_amin", (), "f"))
        self.log_mul = np.float32(_arr(arrays, "mel_log_mul", (), "f"))
        self.log_div = np.float32(_arr(arrays, "mel_log_div", (), "f"))
        self.top_db = np.float32(_arr(arrays, "mel_top_db", (), "f"))
        if self.hop <= 0 or self.amin <= 0 or self.log_div == 0:
            raise ValueError("speech embedding arrays: hop, amin and log_div must be positive")

        self.window = int(_arr(arrays, "emb_window", (), "iu"))
        pad = _arr(arrays, "emb_input_pad", (4,), "iu").tolist()  # top, left, bottom, right
        if pad[0] or pad[2]:
            raise ValueError("speech embedding arrays: the port does not pad the input in time")
        self._in_pad = (int(pad[1]), int(pad[3]))
        table = _arr(arrays, "emb_layers", (None, 4), "iu")
        alpha = float(_arr(arrays, "emb_leaky_alpha", (), "f"))
        if not 0.0 <= alpha < 1.0:
            raise ValueError(f"speech embedding arrays: LeakyRelu alpha {alpha} outside [0, 1)")
        self.alpha = np.float32(alpha)
        self.floor = np.float32(_arr(arrays, "emb_act_floor", (), "f"))
        layers: list[_Layer] = []
        cin = 1
        for k, (relu_bn, act, ph, pw) in enumerate(table.tolist()):
            w = _arr(arrays, f"emb_conv_{k:02d}_w", (None, cin, None, None), "f")
            cout, _, kh, kw = w.shape
            b = _arr(arrays, f"emb_conv_{k:02d}_b", (cout,), "f")
            top, left, bottom, right = _arr(arrays, f"emb_conv_{k:02d}_pads", (4,), "iu").tolist()
            if top or bottom:
                raise ValueError(f"speech embedding arrays: conv {k} pads in time, which the port does not do")
            bn = None
            if relu_bn:
                scale, shift, mean, var = _arr(arrays, f"emb_bn_{k:02d}", (4, cout), "f").astype(np.float64)
                eps = float(_arr(arrays, f"emb_bn_{k:02d}_eps", (), "f"))
                a = scale / np.sqrt(var + eps)
                bn = (a.astype(np.float32), (shift - mean * a).astype(np.float32))
            if (ph, pw) != (0, 0) and min(ph, pw) < 1:
                raise ValueError(f"speech embedding arrays: conv {k} pool {(ph, pw)}")
            wmat = np.ascontiguousarray(w.transpose(2, 3, 1, 0).reshape(kh * kw * cin, cout), dtype=np.float32)
            layers.append(_Layer(wmat, b.astype(np.float32), kh, kw, int(left), int(right), bn, bool(act),
                                 (int(ph), int(pw)) if ph else None))
            cin = cout
        if not layers or cin != EMBED_DIM:
            raise ValueError(f"speech embedding arrays: {len(layers)} layers ending in {cin} channels, expected {EMBED_DIM}")
        self._layers = tuple(layers)
        t, f = self._out_size(self.window, self.bands)
        if (t, f) != (1, 1):
            raise ValueError(f"speech embedding arrays: a {self.window}x{self.bands} window gives a {t}x{f} output, not 1x1")
        # Frames between consecutive outputs of one pass over a long spectrogram.
        self.stride = math.prod(L.pool[0] for L in layers if L.pool)

    @classmethod
    def load(cls, path: str | Path | None = None) -> SpeechEmbedding:
        """Read an npz written by train/export_embedding.py (default: the shipped one); ValueError if unusable."""
        path = Path(path) if path is not None else default_path()
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except Exception as e:  # missing, unreadable, not an npz, a pickled or corrupt member (BadZipFile, ...)
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ValueError(f"{path}: cannot read the speech embedding ({reason})") from None
        try:
            return cls(arrays)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None

    def _out_size(self, t: int, f: int) -> tuple[int, int]:
        """(time, bands) the network outputs for a t x f spectrogram."""
        f += self._in_pad[0] + self._in_pad[1]
        for L in self._layers:
            t, f = t - L.kh + 1, f + L.pad_l + L.pad_r - L.kw + 1
            if L.pool:
                t, f = t // L.pool[0], f // L.pool[1]
        return t, f

    # ---- melspectrogram ----------------------------------------------------------------------

    def melspec(self, x: np.ndarray) -> np.ndarray:
        """(frames, 32) float32 log-mel of 16 kHz audio scaled like int16, already x / 10 + 2.

        frames = (len(x) - 512) // 160 + 1 (no centring or padding, like the ONNX graph). The
        -80 dB floor is relative to this call's loudest value, as in the graph.
        """
        return self._melspec(x)[0]

    def _melspec(self, x: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
        """melspec(x) and the frames [lo, hi) that hear a non-zero sample: every other frame is
        the same constant row (power 0), which `_forward` need not convolve again and again."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 1 or len(x) < self.n_fft:
            raise ValueError(f"melspec: needs 1-D audio of at least {self.n_fft} samples, got shape {x.shape}")
        n_frames = (len(x) - self.n_fft) // self.hop + 1
        nz = np.flatnonzero(x)
        if len(nz) == 0:
            lo = hi = 0
        else:  # frame j holds samples [j * hop, j * hop + n_fft)
            lo = max(0, (int(nz[0]) - self.n_fft) // self.hop + 1)
            hi = min(n_frames, int(nz[-1]) // self.hop + 1)
        n = self.stft.shape[1] // 2
        power = np.zeros((n_frames, n), dtype=np.float32)
        if hi > lo:
            frames = sliding_window_view(x, self.n_fft)[lo * self.hop : (hi - 1) * self.hop + 1 : self.hop]
            if self._fft_window is not None:
                z = np.fft.rfft(frames * self._fft_window, axis=1)
                power[lo:hi] = z.real**2 + z.imag**2
            else:
                z = np.ascontiguousarray(frames) @ self.stft
                np.square(z, out=z)
                power[lo:hi] = z[:, :n] + z[:, n:]
        mel = power @ self.fbank
        np.maximum(mel, self.amin, out=mel)
        np.log(mel, out=mel)
        mel *= self.log_mul  # the graph's op order: log, * 10, / ln 10
        mel /= self.log_div
        np.maximum(mel, mel.max() - self.top_db, out=mel)
        mel /= np.float32(10.0)  # openWakeWord's melspec_transform: x / 10 + 2
        mel += np.float32(2.0)
        return mel, (lo, hi)

    def windows(self, mel: np.ndarray, step: int = WINDOW_STEP) -> np.ndarray:
        """(n, 76, 32) windows every `step` frames; a short tail is dropped (openWakeWord does too)."""
        mel = np.asarray(mel, dtype=np.float32)
        if mel.ndim != 2 or mel.shape[1] != self.bands or step < 1:
            raise ValueError(f"windows: expected (frames, {self.bands}) and step >= 1, got {mel.shape}, step {step}")
        if len(mel) < self.window:
            return np.zeros((0, self.window, self.bands), dtype=np.float32)
        return np.ascontiguousarray(sliding_window_view(mel, self.window, axis=0)[::step].transpose(0, 2, 1))

    # ---- embedding ---------------------------------------------------------------------------

    def _forward(self, x: np.ndarray, live: tuple[int, int] | None = None) -> np.ndarray:
        """(n, t, bands) -> (n, t_out, 96): the network, channels-last, no padding in time.

        `live` = (lo, hi): for one spectrogram (n = 1) whose rows outside [lo, hi) are all the same
        row (a short word centred in silence). A convolution over identical rows gives identical
        rows, so each layer computes the rows that can see [lo, hi) and copies one computed
        constant row into the rest: the same output, a fraction of the work."""
        n, t, f = x.shape
        pl, pr = self._in_pad
        h = np.zeros((n, t, f + pl + pr, 1), dtype=np.float32)
        h[:, :, pl : pl + f, 0] = x
        if live is not None and (n != 1 or not 0 <= live[0] < live[1] <= t or live == (0, t)):
            live = None
        for L in self._layers:
            if live is None:
                h = _conv(h, L)
            else:
                h, live = _conv_live(h, L, live)
            # Max-pooling commutes with the bias and the activation (both non-decreasing), so pool
            # first and run them on 1/4 of the values; batch norm may have a negative scale: after.
            early = L.pool is not None and L.bn is None
            if early:
                h = _maxpool(h, *L.pool)
            h += L.b
            if L.bn is not None:
                np.maximum(h, 0.0, out=h)
                h *= L.bn[0]
                h += L.bn[1]
            if L.act:
                np.maximum(h, h * self.alpha, out=h)
                np.maximum(h, self.floor, out=h)
            if L.pool and not early:
                h = _maxpool(h, *L.pool)
            if live is not None and L.pool:
                ph = L.pool[0]
                live = (live[0] // ph, min(h.shape[1], -(-live[1] // ph)))
            if live == (0, h.shape[1]):
                live = None  # nothing constant left: the plain convolution from here on
        return h[:, :, 0, :]

    def embed(self, mel_windows: np.ndarray) -> np.ndarray:
        """(n, 76, 32) windows -> (n, 96) float32 embeddings, each window on its own."""
        x = np.asarray(mel_windows, dtype=np.float32)
        if x.ndim != 3 or x.shape[1:] != (self.window, self.bands):
            raise ValueError(f"embed: expected (n, {self.window}, {self.bands}), got {x.shape}")
        if len(x) == 0:
            return np.zeros((0, EMBED_DIM), dtype=np.float32)
        return np.ascontiguousarray(self._forward(x)[:, 0, :])

    def embed_mel(self, mel: np.ndarray, step: int = WINDOW_STEP, live: tuple[int, int] | None = None) -> np.ndarray:
        """embed(windows(mel, step)), computed as one pass over the whole spectrogram when step is
        a multiple of the network's time stride (the case for step 8): ~5x less work. `live`: the
        rows [lo, hi) outside which every row of `mel` is the same (`_melspec` says which)."""
        mel = np.asarray(mel, dtype=np.float32)
        if step < 1 or step % self.stride or mel.ndim != 2 or len(mel) < self.window:
            return self.embed(self.windows(mel, step))  # windows() also rejects a bad shape or step
        if mel.shape[1] != self.bands:
            raise ValueError(f"embed_mel: expected (frames, {self.bands}), got {mel.shape}")
        n = (len(mel) - self.window) // step + 1
        used = self.window + step * (n - 1)
        if live is not None:
            live = (min(live[0], used), min(live[1], used))
        out = self._forward(mel[None, :used], live)[0]  # (1 + (n - 1) * step / stride, 96)
        return np.ascontiguousarray(out[:: step // self.stride])

    # ---- the classifier's clip vector ------------------------------------------------------

    def clip_windows(self, x8k: np.ndarray) -> np.ndarray:
        """(11, 96) float32 window embeddings of one utterance.

        8 kHz float clip in [-1, 1] -> peak-normalised -> the CLIP_SECONDS of most energy, or
        centred in zeros when shorter -> 16 kHz (`upsample2`) -> x 32767 -> melspec ->
        76-frame windows every 8 frames -> embed. Fixed length, so every clip gives the same
        number of windows (11) and the middle window sits at the same place.
        """
        mel, live = self.clip_mel(x8k)
        return self.embed_mel(mel, live=live).astype(np.float32)

    def clip_mel(self, x8k: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
        """The log-mel spectrogram `clip_windows` embeds, and its live rows (`_melspec`): the
        network's input, which the trainer's fine-tuning (train/embed_tune.py) learns from."""
        up = upsample2(fit_clip(x8k))
        up *= np.float32(INT16_SCALE)
        return self._melspec(up)

    def pooled(self, x8k: np.ndarray) -> np.ndarray:
        """(288,) float32 [mean, max, middle] of the window embeddings of one utterance."""
        return pool(self.clip_windows(x8k))

    def warm_up(self) -> None:
        """Touch every buffer once, so the first utterance is not slow."""
        self.pooled(np.zeros(CLIP_SAMPLES, dtype=np.float32))


def pool(emb: np.ndarray) -> np.ndarray:
    """(POOLED_DIM,) [mean, max, middle window] of (windows, 96) embeddings."""
    return np.concatenate([emb.mean(axis=0), emb.max(axis=0), emb[len(emb) // 2]]).astype(np.float32)


def _halfband_taps() -> np.ndarray:
    """The filter scipy.signal.resample_poly(x, 2, 1) designs for float32 input:
    firwin(41, 0.5, window=("kaiser", 5.0)) (a Kaiser-windowed sinc scaled to unit DC gain;
    np.kaiser is the same window), cast to float32, times the up factor 2."""
    m = np.arange(2 * HALF_LEN + 1) - float(HALF_LEN)
    h = 0.5 * np.sinc(0.5 * m) * np.kaiser(len(m), KAISER_BETA)
    return (h / h.sum()).astype(np.float32) * np.float32(2)


HALF_LEN = 10 * 2  # resample_poly's half length: 10 * max(up, down)
KAISER_BETA = 5.0  # resample_poly's default window ("kaiser", 5.0)
_TAPS = _halfband_taps()
_EVEN, _ODD = _TAPS[0::2].copy(), _TAPS[1::2].copy()  # the two polyphase branches
_EVEN64, _ODD64 = _EVEN.astype(np.float64), _ODD.astype(np.float64)


def upsample2(x: np.ndarray) -> np.ndarray:
    """8 kHz -> 16 kHz, equal to scipy.signal.resample_poly(x, 2, 1) on float32 to float32
    rounding (tests/test_embedding.py compares them).

    Why not scipy: importing scipy.signal costs the daemon ~47 MB of resident memory and
    ~0.5 s of cold start, and this is its only use on the listening path. Polyphase form of
    resample_poly's upfirdn: output sample 2m is the even taps over x around m, 2m + 1 the
    odd taps; both centred (the filter's delay of HALF_LEN / 2 input samples removed)."""
    x = np.asarray(x, dtype=np.float64)  # numpy convolves float64 about twice as fast as float32
    n = len(x)
    d = HALF_LEN // 2
    out = np.empty(2 * n, dtype=np.float32)
    out[0::2] = np.convolve(x, _EVEN64)[d : d + n]
    out[1::2] = np.convolve(x, _ODD64)[d : d + n]
    return out


def fit_clip(x8k: np.ndarray) -> np.ndarray:
    """Peak-normalise an 8 kHz clip, then centre it in CLIP_SAMPLES zeros or keep its loudest
    CLIP_SAMPLES (largest sum of squares; the first on ties). ValueError on non-finite input."""
    x = np.asarray(x8k, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"pooled: expected a 1-D clip, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("pooled: clip has NaN or infinite samples")
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if peak > 0.0:
        x = x / np.float32(peak)
    n = CLIP_SAMPLES
    if len(x) > n:
        c = np.concatenate([[0.0], np.cumsum(np.square(x, dtype=np.float64))])
        start = int(np.argmax(c[n:] - c[:-n]))
        return np.ascontiguousarray(x[start : start + n])
    out = np.zeros(n, dtype=np.float32)
    left = (n - len(x)) // 2
    out[left : left + len(x)] = x
    return out


def _conv(x: np.ndarray, L: _Layer) -> np.ndarray:
    """(n, t, f, cin) -> (n, t - kh + 1, f', cout) without the bias: zero-pad the bands, im2col, one matmul."""
    n, t, f, c = x.shape
    if L.pad_l or L.pad_r:
        xp = np.zeros((n, t, f + L.pad_l + L.pad_r, c), dtype=np.float32)
        xp[:, :, L.pad_l : L.pad_l + f] = x
        x, f = xp, f + L.pad_l + L.pad_r
    to, fo = t - L.kh + 1, f - L.kw + 1
    if L.kh == 1 and L.kw == 1:
        cols = x.reshape(-1, c)
    else:  # an (n, to, fo, kh, kw, c) view -> rows ordered (kh, kw, c) like L.w
        cols = window_view(x, (n, to, fo, L.kh, L.kw, c), (0, 1, 2, 1, 2, 3)).reshape(-1, L.kh * L.kw * c)
    return (cols @ L.w).reshape(n, to, fo, -1)  # the caller adds the bias


def window_view(x: np.ndarray, shape: tuple[int, ...], axes: tuple[int, ...]) -> np.ndarray:
    """A read-only view of `x` whose axis i steps along x's axis `axes[i]`: sliding windows in
    the layout a matrix product wants (this module's convolutions and digitd.embedhead's).
    sliding_window_view builds the same view, but its argument checks cost ~20 us a call, and a
    classification makes ~40 of them (5% of the daemon's time; the same arrays,
    tests/test_embedding.py)."""
    return as_strided(x, shape, tuple(x.strides[a] for a in axes), writeable=False)


def _conv_live(x: np.ndarray, L: _Layer, live: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]]:
    """_conv(x, L) for one image (n = 1) whose rows outside `live` = [lo, hi) are one identical row,
    and the output's own live rows. Output row r sees input rows r .. r + kh - 1."""
    lo, hi = live
    t = x.shape[1]
    to = t - L.kh + 1
    a, b = max(0, lo - L.kh + 1), min(to, hi)
    if a == 0 and b == to:
        return _conv(x, L), (0, to)
    const = x[:, :1] if lo > 0 else x[:, t - 1 :]  # a row outside [lo, hi)
    tile = _conv(np.broadcast_to(const, (1, L.kh) + x.shape[2:]), L)  # (1, 1, fo, cout)
    out = np.empty((1, to) + tile.shape[2:], dtype=np.float32)
    out[:] = tile
    if b > a:
        out[:, a:b] = _conv(x[:, a : b + L.kh - 1], L)
    return out, (a, b)


def _dft_window(real: np.ndarray, imag: np.ndarray) -> np.ndarray | None:
    """The window w when real[k, n] = w[n] cos(2 pi k n / N) and imag[k, n] = -w[n] sin(...) for
    the bins k = 0 .. N / 2 (numpy's rfft convention), else None (a matrix of another kind)."""
    bins, n_fft = real.shape
    if bins != n_fft // 2 + 1:
        return None
    w = real[0].astype(np.float64)
    ang = 2.0 * np.pi * np.outer(np.arange(bins), np.arange(n_fft)) / n_fft
    scale = max(float(np.abs(w).max()), 1e-30)
    if (np.abs(real - w * np.cos(ang)).max() > 1e-5 * scale or np.abs(imag + w * np.sin(ang)).max() > 1e-5 * scale):
        return None
    return w.astype(np.float32)


def _maxpool(x: np.ndarray, ph: int, pw: int) -> np.ndarray:
    """Non-overlapping max-pool over (time, bands), dropping a ragged edge (ONNX floor mode)."""
    t2, f2 = x.shape[1] // ph, x.shape[2] // pw
    x = x[:, : t2 * ph, : f2 * pw]
    out = np.array(x[:, ::ph, ::pw])  # an element-wise max over the ph * pw strided views beats .max(axis=(2, 4))
    for i in range(ph):
        for j in range(pw):
            if i or j:
                np.maximum(out, x[:, i::ph, j::pw], out=out)
    return out
