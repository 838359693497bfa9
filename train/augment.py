"""Signal conditions for augmentation (training) and for robustness tests (`eval --conditions`).

Both use the same mixing code, so "10 dB babble" means the same thing in the table as in
training. SNR is measured against the speech itself (the trimmed word), not the whole clip.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from scipy.signal import lfilter

from digitd.config import DenoiseConfig
from digitd.denoise import noise_psd, suppress
from digitd.features import DEFAULT_PARAMS, trim
from digitd.synth import change_speed, mic_curve, microphone, room_impulse, reverberate

NOISE_KINDS = ("white", "pink", "babble")  # the pooled members' copies (v3-v6)
ALL_NOISE_KINDS = ("white", "pink", "brown", "babble", "recorded")  # recorded: real background recordings (a bank)
ROOM_RT60_S = (0.2, 0.9)  # reverberant copies (AugmentSpec "reverb", the sequence head's): reverberation time
ROOM_DRR_DB = (-3.0, 12.0)  # and direct-to-reverberant ratio, from a close talker to one across the room
STEADY_KINDS = ("white", "pink", "brown")  # the noises the daemon subtracts (digitd.denoise: a background that holds still)
DENOISE_MAX_SNR_DB = 20.0  # it does so only under noise within 20 dB of the word (endpoint.TALK_MARGIN_DB, against the word's peak)
ESTIMATE_S = 1.0  # the daemon's noise estimate: denoise.background_ms of background heard before the word


@dataclass
class AugmentSpec:
    """Augmented copies per clip and the ranges they are drawn from (0 copies = off).

    Each copy gets: optionally a room's reverberation, a noise kind and SNR (or none), a gain,
    random low-level padding at both ends (which also shifts the word in time), an optional speed
    change, and a VTLN warp factor applied in the filterbank (covers shorter/higher vocal tracts
    than FSDD's six men).
    """

    copies: int = 0
    kinds: list[str] = field(default_factory=lambda: ["noise", "pad", "gain", "speed"])  # which effects copies may get
    # v3 features: 0 dB copies and clipping gains no longer cost LOSO (measured with the
    # loud-frame pooling; with v2 features +20 dB gains cost george ~8 points). Gains are
    # relative to a 0.5 peak, so +26 dB clips at up to 10x full scale (gain x10 on a loud clip).
    snr_db: list[float] = field(default_factory=lambda: [0.0, 5.0, 10.0, 15.0, 20.0, 30.0])
    noise_prob: float = 0.85
    gain_db: list[float] = field(default_factory=lambda: [-30.0, 26.0])
    pad_ms: list[float] = field(default_factory=lambda: [0.0, 300.0])
    pad_prob: float = 0.7
    speed: list[float] = field(default_factory=list)
    warps: list[float] = field(default_factory=list)  # e.g. [0.85, 0.9, 1.1, 1.2]; [] = no warp
    clean_warps: bool = True  # also add an un-noised copy per warp factor
    noise_kinds: list[str] = field(default_factory=lambda: list(NOISE_KINDS))  # drawn from for each noisy copy
    # "reverb" in kinds (opt-in: recipes without it draw exactly as before): a share of the copies
    # is heard through a synthetic room (digitd.synth.room_impulse) before any noise is added
    reverb_prob: float = 0.4
    rt60_s: list[float] = field(default_factory=lambda: list(ROOM_RT60_S))
    drr_db: list[float] = field(default_factory=lambda: list(ROOM_DRR_DB))
    # > 0 (opt-in: recipes without it draw exactly as before): this share of the copies under
    # steady noise (STEADY_KINDS, at <= DENOISE_MAX_SNR_DB) is heard as the daemon hears such a
    # word, through digitd.denoise (add_denoised_noise)
    denoise_prob: float = 0.0
    # > 0 (opt-in: recipes without it draw exactly as before): this share of the copies is heard
    # through a random microphone (digitd.synth.mic_curve "random"), noise and all, before the gain
    mic_prob: float = 0.0


def speech_power(x: np.ndarray) -> float:
    w = trim(x, DEFAULT_PARAMS)
    return float(np.mean(np.asarray(w, dtype=np.float64) ** 2)) + 1e-12


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """1/f noise by the Voss-McCartney-style IIR approximation (Kellet's filter)."""
    b = [0.049922035, -0.095993537, 0.050612699, -0.004408786]
    a = [1, -2.494956002, 2.017265875, -0.522189400]
    y = lfilter(b, a, rng.standard_normal(n + 2000))[2000:]
    return y / (np.std(y) + 1e-12)


def make_babble(waves: Sequence[np.ndarray], seconds: float, rng: np.random.Generator, talkers: int = 5, rate: int = 8000) -> np.ndarray:
    """Several overlapping streams of other clips (unit RMS): cocktail-party noise."""
    n = int(seconds * rate)
    out = np.zeros(n)
    for _ in range(talkers):
        stream = np.concatenate([waves[i] for i in rng.integers(0, len(waves), size=max(4, int(seconds * 4)))])
        while len(stream) < n:
            stream = np.concatenate([stream, stream])
        start = int(rng.integers(0, len(stream) - n + 1))
        seg = stream[start : start + n].astype(np.float64)
        out += seg / (np.sqrt(np.mean(seg**2)) + 1e-12)
    return out / (np.sqrt(np.mean(out**2)) + 1e-12)


def talker_banks(words: Sequence, seed: int, seconds: float, most: int) -> list[np.ndarray]:
    """Babble of 3, 4, 5 and 6 talkers, `seconds` each, from up to `most` of `words` (records
    with .load(), drawn with the seed): background talk of many voices, as in a room. [] for no words."""
    if not words:
        return []
    rng = np.random.default_rng([seed, 31])
    pick = rng.choice(len(words), size=min(most, len(words)), replace=False)
    waves = [words[i].load() for i in pick]
    return [make_babble(waves, seconds, rng, talkers=t) for t in (3, 4, 5, 6)]


def noise(kind: str, n: int, rng: np.random.Generator, babble: np.ndarray | None = None) -> np.ndarray:
    if kind == "white":
        return rng.standard_normal(n)
    if kind == "pink":
        return pink_noise(n, rng)
    if kind == "brown":
        from digitd.synth import colored_noise

        return colored_noise(n, "brown", rng).astype(np.float64)
    if kind in ("babble", "recorded"):  # a slice of a bank: babble, or real background recordings
        if babble is None or len(babble) < n:
            raise ValueError(f"{kind} noise needs a bank at least as long as the clip")
        s = int(rng.integers(0, len(babble) - n + 1))
        return babble[s : s + n]
    raise ValueError(f"unknown noise kind {kind!r}")


def add_noise(x: np.ndarray, kind: str, snr_db: float, rng: np.random.Generator, babble: np.ndarray | None = None,
              ref_power: float | None = None) -> np.ndarray:
    """x + noise scaled so that speech power / noise power = snr_db."""
    p = ref_power if ref_power is not None else speech_power(x)
    return x + _at_snr(noise(kind, len(x), rng, babble), p, snr_db)


def _at_snr(nz: np.ndarray, speech_power: float, snr_db: float) -> np.ndarray:
    """`nz` scaled so that speech_power / its power = snr_db."""
    return nz / (np.sqrt(np.mean(nz**2)) + 1e-12) * np.sqrt(speech_power / 10 ** (snr_db / 10))


def add_denoised_noise(x: np.ndarray, kind: str, snr_db: float, rng: np.random.Generator,
                       ref_power: float | None = None, rate: int = 8000) -> np.ndarray:
    """`add_noise` for a steady kind, then what the daemon does to such a word before its
    members hear it (`digitd.denoise` with config.toml's defaults): the noise's power spectrum,
    estimated on ESTIMATE_S more of the same noise at the same level (the background heard
    before the word), subtracted. Members trained on these copies learn the subtraction's
    traces instead of meeting them first in the daemon."""
    d = DenoiseConfig()
    p = ref_power if ref_power is not None else speech_power(x)
    k = int(ESTIMATE_S * rate)
    nz = _at_snr(noise(kind, len(x) + k, rng), p, snr_db)
    psd = noise_psd(nz[:k].astype(np.float32), float("inf"))
    y = (x + nz[k:]).astype(np.float32)
    return suppress(y, psd, d.over, d.floor_db).astype(np.float64) if psd is not None else y.astype(np.float64)


def add_noise_as_heard(x: np.ndarray, kind: str, snr_db: float, rng: np.random.Generator, bank: np.ndarray | None,
                       ref_power: float, denoise_prob: float) -> np.ndarray:
    """`add_noise`, or with probability `denoise_prob` for a steady kind at <= DENOISE_MAX_SNR_DB
    `add_denoised_noise` (the word as the daemon hears it). With denoise_prob 0 no extra random
    number is drawn, so a recipe without it draws its copies exactly as before."""
    if denoise_prob > 0 and kind in STEADY_KINDS and snr_db <= DENOISE_MAX_SNR_DB and rng.random() < denoise_prob:
        return add_denoised_noise(x, kind, snr_db, rng, ref_power=ref_power)
    return add_noise(x, kind, snr_db, rng, bank, ref_power=ref_power)


def apply_gain(x: np.ndarray, factor: float) -> np.ndarray:
    """Scale and clip to [-1, 1] like a saturating ADC."""
    return np.clip(x * factor, -1.0, 1.0)


def pad(x: np.ndarray, before_ms: float, after_ms: float, level_db: float, rng: np.random.Generator, rate: int = 8000) -> np.ndarray:
    """Low-level white noise (level_db under the speech) before and after the clip."""
    amp = np.sqrt(speech_power(x) / 10 ** (level_db / 10))
    a = rng.standard_normal(int(rate * before_ms / 1000)) * amp
    b = rng.standard_normal(int(rate * after_ms / 1000)) * amp
    return np.concatenate([a, x, b])


def augment_wave(x: np.ndarray, spec: AugmentSpec, rng: np.random.Generator,
                 babble: np.ndarray | None = None, recorded: np.ndarray | None = None) -> list[tuple[np.ndarray, float, bool]]:
    """`spec.copies` random (wave, warp, corrupted) variants of x, plus one clean copy per warp
    factor. `corrupted`: noise was added or the gain clipped it (padding or level alone is not).
    `babble` / `recorded`: the banks the babble and recorded noise kinds slice (kinds without a
    bank are skipped)."""
    x = np.asarray(x, dtype=np.float64)
    out: list[tuple[np.ndarray, float, bool]] = []
    if spec.clean_warps:
        out += [(x, float(w), False) for w in spec.warps if w != 1.0]
    warps = [1.0] + [w for w in spec.warps if w != 1.0]
    # its own generator: microphones change no other draw of the copies
    mic_rng = rng.spawn(1)[0] if spec.mic_prob > 0 else None  # spawning draws nothing from rng
    for _ in range(spec.copies):
        y = x
        corrupted = False
        if "speed" in spec.kinds and spec.speed and rng.random() < 0.3:
            y = change_speed(y, float(rng.uniform(*spec.speed)))
        if "reverb" in spec.kinds and rng.random() < spec.reverb_prob:
            h = room_impulse(float(rng.uniform(*spec.rt60_s)), float(rng.uniform(*spec.drr_db)), rng)
            y = reverberate(y, h)
            corrupted = True
        p = speech_power(y)
        if "pad" in spec.kinds and spec.pad_ms and spec.pad_ms[1] > 0 and rng.random() < spec.pad_prob:
            y = pad(y, float(rng.uniform(*spec.pad_ms)), float(rng.uniform(*spec.pad_ms)), float(rng.uniform(35, 60)), rng)
        if "noise" in spec.kinds and rng.random() < spec.noise_prob:
            banks = {"babble": babble, "recorded": recorded}
            kinds = [k for k in spec.noise_kinds if k not in banks or banks[k] is not None]
            if not kinds:
                raise ValueError(f"noise kinds {spec.noise_kinds} all need a bank that was not given")
            kind = str(rng.choice(kinds))
            y = add_noise_as_heard(y, kind, float(rng.choice(spec.snr_db)), rng, recorded if kind == "recorded" else babble,
                                   p, spec.denoise_prob)
            corrupted = True
        if mic_rng is not None and mic_rng.random() < spec.mic_prob:  # the microphone hears word and noise alike
            y = microphone(y, mic_curve("random", mic_rng))
        if "gain" in spec.kinds:
            g = 10 ** (float(rng.uniform(*spec.gain_db)) / 20)
            y = apply_gain(y / max(1e-9, np.max(np.abs(x))) * 0.5, g)
            corrupted = corrupted or bool(np.mean(np.abs(y) >= 1.0) > 0.001)
        out.append((y, float(rng.choice(warps)), corrupted))
    return out
