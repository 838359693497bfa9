"""Microphone equalisation: the members hear the room's words as they learned them.

Why: the members learned from recordings made through a few hundred microphones, and one small
capsule colours every word it hears. A laptop's (thin under 300 Hz, +8 dB at 3 kHz) cost the shipped
model 8.6 points of DER on the room bench (stop 52), though the SNR in every band stays as it was: the
members read the microphone's shape, not the noise. The microphone is what colours every word of a
stream alike, while the words' and voices' own shapes vary from one to the next. So the speech
heard so far, set against the long-term spectrum of the training side's speech
(`digitd/data/speech_spectrum.json`, written by `scripts/speech_spectrum.py`), gives the microphone's
broad shape, and a linear-phase FIR undoes it on the audio the classifier hears. The VAD, the
endpointer and every level rule hear the input as it comes, so only what the members hear changes.

A small stateful object, as silero-vad's iterator: `observe` each voiced word the pipeline decided
(its frames over the noise, the noise's power taken out: the talker's and the room's voices come
through the same microphone), `apply` the current correction to the next word. Nothing changes until
`min_speech_s` of such frames were heard.

`equalize.where = "stream"` (stop 54) puts the correction in front of the VAD instead: `frame` runs
the stream through a minimum-phase twin of the filter (no delay), so the VAD, the endpointer and
every level rule hear the microphone undone too. Part of a coloured microphone's loss is words the
front end never finds (recorded noise 10 dB through a laptop's capsule, unseen speakers: 28.0 ->
21.6% DER). The worker still learns the microphone from the words it decides, with the correction
they were heard through taken back out, and the frame thread takes each new correction up at a
quiet frame a fixed stream time later, so a live run and a file switch at the same samples. On
streams mixed from many recordings, each its own microphone, the estimate wanders and the front end
follows it: there it costs more than the members-only correction (ten unseen seeds 12.88 -> 13.13%),
so it is the choice for one microphone, not the default.
"""

from __future__ import annotations

import json
from collections import deque
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import fft  # already loaded by python_speech_features, as digitd.denoise uses it

from digitd import SAMPLE_RATE
from digitd.config import EqualizeConfig
from digitd.errors import DigitdError

NPERSEG = 256  # 32 ms frames, half overlapping: the spectrum's 129 bins are 31 Hz apart
HOP = NPERSEG // 2
BINS = NPERSEG // 2 + 1
TAPS = 257  # the FIR's length (32 ms), centred: the word does not move in time
SMOOTH_OCTAVES = 1 / 3  # the correction is smoothed with a Gaussian this wide (sigma) in log frequency: a microphone's broad shape
FIT_HZ = (100.0, 3900.0)  # the bins the smoothing reads (a phone's dead bands outside are clipped, not followed)
LEVEL_HZ = (300.0, 3500.0)  # the correction's mean over this band is 0 dB: it shapes, the VAD's gain sets the level
SETTLE_S = 0.25  # stream mode: a correction reaches the stream this long after the word that taught it was decided (a worker takes ~20 ms)
REFERENCE = Path(__file__).parent / "data" / "speech_spectrum.json"
_FREQS = np.fft.rfftfreq(NPERSEG, 1.0 / SAMPLE_RATE)
_WINDOW = np.hanning(NPERSEG + 2)[1:-1]  # Hann without its zero ends
_LOGF = np.log2(np.maximum(_FREQS, 60.0) / 1000.0)
_SMOOTH = np.exp(-0.5 * ((_LOGF[:, None] - _LOGF[None, :]) / SMOOTH_OCTAVES) ** 2) * ((_FREQS >= FIT_HZ[0]) & (_FREQS <= FIT_HZ[1]))[None, :]
_SMOOTH_SUM = _SMOOTH.sum(axis=1)
_LEVEL = (_FREQS >= LEVEL_HZ[0]) & (_FREQS <= LEVEL_HZ[1])


def frame_power(x: np.ndarray) -> np.ndarray:
    """(frames, BINS) power spectra of `x`'s 32 ms frames (hop 16 ms); (0, BINS) for a shorter `x`."""
    x = np.asarray(x, dtype=np.float64)
    n = 1 + (len(x) - NPERSEG) // HOP if len(x) >= NPERSEG else 0
    if n <= 0:
        return np.zeros((0, BINS))
    frames = np.lib.stride_tricks.sliding_window_view(x, NPERSEG)[::HOP][:n]
    return np.abs(np.fft.rfft(frames * _WINDOW, axis=1)) ** 2


def speech_spectrum(power: np.ndarray, noise: np.ndarray | None = None, over_db: float = 6.0) -> tuple[np.ndarray, int]:
    """(the word's speech spectrum at unit power, how many frames it has): its frames at least
    `over_db` over the noise's level, summed, the noise's power taken out of each bin (down to a
    thousandth of the sum). Without a `noise` estimate, the quietest fifth of the frames is the
    noise. Each word is scaled to unit power, so a loud word weighs as much as a quiet one of its
    length; the frames are not (one frame's shape is a phoneme's: a microphone's lift at 3 kHz
    barely moves the shape of an "s", and scaled frame by frame it would hide)."""
    if len(power) == 0:
        return np.zeros(BINS), 0
    level = 10.0 * np.log10(power.sum(axis=1) + 1e-20)
    if noise is None:
        noise = power[level <= np.percentile(level, 20)].mean(axis=0)
    sel = level >= 10.0 * np.log10(noise.sum() + 1e-20) + over_db
    n = int(sel.sum())
    if n == 0:
        return np.zeros(BINS), 0
    total = power[sel].sum(axis=0)
    s = np.maximum(total - n * noise, 1e-3 * total)
    return s / s.sum(), n


@lru_cache(maxsize=4)
def load_reference(path: str = str(REFERENCE)) -> np.ndarray:
    """The training side's long-term speech spectrum, dB per bin (BINS,)."""
    try:
        d = json.loads(Path(path).read_text())
        db = np.asarray(d["db"], dtype=np.float64)
        ok = d.get("nperseg") == NPERSEG and d.get("rate") == SAMPLE_RATE and db.shape == (BINS,) and bool(np.isfinite(db).all())
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise DigitdError(f"{path}: cannot read the speech spectrum ({type(e).__name__}: {e}); reinstall digitd, or set equalize.mic = false") from None
    if not ok:
        raise DigitdError(f"{path}: not a {BINS}-bin speech spectrum at {SAMPLE_RATE} Hz; reinstall digitd, or set equalize.mic = false")
    return db


def correction_db(spectrum_db: np.ndarray, reference_db: np.ndarray, max_boost_db: float, max_cut_db: float) -> np.ndarray:
    """The broad shape that takes `spectrum_db` to `reference_db`: their difference, its mean over
    LEVEL_HZ made 0 dB, smoothed over SMOOTH_OCTAVES in log frequency across FIT_HZ (a
    microphone's shape, not what is left of the voices' formants), clipped to
    [-max_cut_db, +max_boost_db]."""
    d = reference_db - spectrum_db
    d = np.clip(d - d[_LEVEL].mean(), -max_cut_db - 6.0, max_boost_db + 6.0)  # a dead band (a phone's) does not drag its neighbours
    c = (_SMOOTH @ d) / _SMOOTH_SUM
    c -= c[_LEVEL].mean()
    return np.clip(c, -max_cut_db, max_boost_db)


_FINE = 4 * (TAPS - 1)  # both filters are designed by frequency sampling on this many points: 4x finer than the taps
_FINE_FREQS = np.fft.rfftfreq(_FINE, 1.0 / SAMPLE_RATE)


def _on_fine_grid(db: np.ndarray) -> np.ndarray:
    """`db` per bin, interpolated onto the design grid's frequencies."""
    return np.interp(_FINE_FREQS, _FREQS, db)


def fir(db: np.ndarray) -> np.ndarray:
    """A linear-phase FIR (TAPS, centred) with the response `db` per bin: frequency sampling on a
    4x finer grid, Hamming-windowed (as scipy.signal.firwin2 designs it; scipy.signal itself, ~50 MB
    and ~1 s to import, stays out of the daemon)."""
    gain = 10.0 ** (_on_fine_grid(db) / 20.0)
    h = np.fft.irfft(gain, _FINE)  # zero phase: centred on sample 0
    h = np.concatenate([h[-(TAPS // 2):], h[: TAPS // 2 + 1]])
    return h * np.hamming(TAPS)


def minimum_phase_fir(db: np.ndarray) -> np.ndarray:
    """A minimum-phase FIR (TAPS) with the magnitude `db` per bin: the real cepstrum of the
    log-magnitude folded onto its causal half. Its energy comes first, so filtering the live
    stream delays nothing (a linear-phase filter would delay every frame by TAPS // 2 samples).
    scipy.signal.minimum_phase(fir(db), half=False) designs the like from the linear-phase filter;
    scipy.signal stays out of the daemon (see `fir`)."""
    n = _FINE
    c = np.fft.irfft(_on_fine_grid(db) * (np.log(10.0) / 20.0), n)  # the real cepstrum of the log-magnitude
    fold = np.zeros(n)
    fold[0] = 1.0
    fold[1 : n // 2] = 2.0
    fold[n // 2] = 1.0
    h = np.fft.irfft(np.exp(np.fft.rfft(c * fold, n)), n)[:TAPS]
    return h * np.hanning(2 * TAPS + 1)[TAPS:-1]  # a half window tapers the (tiny) tail


class StreamFilter:
    """The microphone's correction on the live stream, frame by frame (the frame thread only):
    every later stage, the VAD included, hears it. `set` swaps the filter, cross-faded over the
    next frame."""

    def __init__(self) -> None:
        self.taps: np.ndarray | None = None
        self._old: np.ndarray | None = None
        self._swapped = False
        self.reset()

    def reset(self) -> None:
        self._hist = np.zeros(TAPS - 1)

    def set(self, taps: np.ndarray | None) -> None:
        self._old, self.taps, self._swapped = self.taps, taps, True

    def process(self, frame: np.ndarray) -> np.ndarray:
        x = np.concatenate([self._hist, np.asarray(frame, dtype=np.float64)])
        self._hist = x[len(x) - (TAPS - 1):]
        if self.taps is None and not self._swapped:
            return frame
        y = _causal(x, self.taps)
        if self._swapped:
            w = np.linspace(0.0, 1.0, len(frame), endpoint=False)
            y = w * y + (1.0 - w) * _causal(x, self._old)
            self._swapped = False
        return y.astype(np.float32)


def _causal(x: np.ndarray, taps: np.ndarray | None) -> np.ndarray:
    """The last len(x) - TAPS + 1 samples of `x` through `taps` (x holds the TAPS - 1 before them)."""
    return x[TAPS - 1 :] if taps is None else np.convolve(x, taps, mode="valid")


def convolve(x: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """`x` filtered by the centred `taps`, its own length (scipy.signal.fftconvolve's "same")."""
    n = len(x) + len(taps) - 1
    size = fft.next_fast_len(n, real=True)
    y = fft.irfft(fft.rfft(x, size) * fft.rfft(taps, size), size)
    start = (len(taps) - 1) // 2
    return y[start : start + len(x)]


class Equalizer:
    """The stream's microphone correction, learned from the voiced words heard so far (worker thread only)."""

    def __init__(self, cfg: EqualizeConfig, reference_db: np.ndarray | None = None) -> None:
        self.cfg = cfg
        self.reference_db = load_reference() if reference_db is None and cfg.mic else reference_db
        self._sum = np.zeros(BINS)
        self._frames = 0.0
        self.speech_s = 0.0  # speech frames observed, seconds (before forgetting)
        self._taps: np.ndarray | None = None
        self._stale = False
        self.strength_db = 0.0  # the correction in force: its largest lift or cut (the live UI shows it)
        self.stream = cfg.mic and cfg.where == "stream"
        self._filter = StreamFilter() if self.stream else None  # the frame thread's
        # the worker's latest correction, (decided at stream sample, dB or None), for the frame thread
        self._pending: tuple[int, np.ndarray | None] | None = None
        self._taken: tuple[int, np.ndarray | None] | None = None  # the last one the frame thread took up
        self._published: np.ndarray | None = None
        # (from stream sample, dB or None): what the stream was heard through, oldest first
        self._history: deque[tuple[int, np.ndarray | None]] = deque([(0, None)], maxlen=64)

    def observe(self, audio: np.ndarray, background: np.ndarray | None = None, start_sample: int = 0,
                decided_sample: int = 0) -> None:
        """Learn from one word (worker thread); `background`: the latest background heard before
        it, the noise taken out of its frames. In stream mode both were heard through the
        correction in force at `start_sample`, which is taken back out (the estimate is the
        microphone's, not what is left of it), and the new correction goes to the frame thread,
        to be taken up `SETTLE_S` after `decided_sample`."""
        if not self.cfg.mic:
            return
        through = self._heard_through(start_sample) if self.stream else None
        undo = 1.0 if through is None else 10.0 ** (-through / 10.0)
        noise = None
        if background is not None and len(background) >= 2 * NPERSEG:
            noise = frame_power(background).mean(axis=0) * undo
        s, n = speech_spectrum(frame_power(audio) * undo, noise, self.cfg.over_noise_db)
        if n == 0:
            return
        seconds = n * HOP / SAMPLE_RATE
        keep = float(np.exp(-seconds / self.cfg.memory_s)) if self.cfg.memory_s > 0 else 1.0
        self._sum = self._sum * keep + s * n
        self._frames = self._frames * keep + n
        self.speech_s += seconds
        self._stale = True
        if self.stream:
            c = self.curve_db()
            before = self._published
            if (c is None) != (before is None) or (c is not None and not np.array_equal(c, before)):
                self._published = c
                self._pending = (decided_sample, c)  # one reference, replaced whole: the frame thread reads it without a lock

    def _heard_through(self, sample: int) -> np.ndarray | None:
        """The stream's correction in force at `sample` (dB, or None for none)."""
        db = None
        for at, c in list(self._history):  # a copy: the frame thread appends
            if at > sample:
                break
            db = c
        return db

    def frame(self, frame: np.ndarray, pos: int, quiet: bool) -> np.ndarray:
        """One frame of the stream (frame thread), from stream sample `pos`, through the correction
        in force (stream mode; as it came otherwise). A new correction is taken up at the first
        `quiet` frame (no utterance open: a word is heard through one filter) `SETTLE_S` after the
        worker decided it (a live pipeline waits for a late worker: `Pipeline._await_decisions`),
        so a live stream and a file switch at the same sample."""
        if self._filter is None:
            return frame
        p = self._pending
        if p is not None and p is not self._taken and quiet and pos >= p[0] + int(SETTLE_S * SAMPLE_RATE):
            self._taken = p
            self._filter.set(None if p[1] is None else minimum_phase_fir(p[1]))
            self._history.append((pos, p[1]))
            self.strength_db = 0.0 if p[1] is None else float(np.abs(p[1]).max())
        return self._filter.process(frame)

    def gap(self) -> None:
        """Audio was lost: the stream filter forgets the samples before the gap."""
        if self._filter is not None:
            self._filter.reset()

    def curve_db(self) -> np.ndarray | None:
        """The correction now, dB per bin, each band `deadband_db` nearer 0 dB (the members read a
        1-2 dB tilt as a change, and a flat microphone's estimate wanders that much); None until
        `min_speech_s` of speech was observed, or while every band is within the dead band."""
        if not self.cfg.mic or self.speech_s < self.cfg.min_speech_s or self._frames <= 0 or self.reference_db is None:
            return None
        heard_db = 10.0 * np.log10(self._sum / self._frames + 1e-20)
        c = correction_db(heard_db, self.reference_db, self.cfg.max_boost_db, self.cfg.max_cut_db)
        c = np.sign(c) * np.maximum(np.abs(c) - self.cfg.deadband_db, 0.0)
        return c if np.any(c) else None

    def apply(self, x: np.ndarray) -> np.ndarray:
        """`x` through the current correction (float32, same length, not moved in time); `x`
        itself while there is none, or in stream mode (the stream was corrected already)."""
        if self.stream:
            return x
        if self._stale:
            c = self.curve_db()
            self._taps = None if c is None else fir(c)
            self.strength_db = 0.0 if c is None else float(np.abs(c).max())
            self._stale = False
        if self._taps is None:
            return x
        return convolve(np.asarray(x, dtype=np.float64), self._taps).astype(np.float32)
