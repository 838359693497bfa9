"""Is there pitch in it? A cheap periodicity gate for utterances.

Every digit has a voiced vowel: a sustained pitch period. Coughs, claps, clicks and noise
bursts pass webrtcvad (and a closed-set classifier happily names a digit for them) but
are aperiodic. Measured on FSDD's 300 test clips vs 400 synthetic coughs/noise bursts:
with r >= 0.5 over >= 3 consecutive 15 ms hops, 0 digits fail and 2 bursts pass.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from digitd import SAMPLE_RATE

FRAME = 240  # 30 ms analysis window
HOP = 120  # 15 ms
LAG_LO, LAG_HI = SAMPLE_RATE // 400, SAMPLE_RATE // 60  # pitch 60-400 Hz
R_MIN = 0.5  # normalised autocorrelation peak that counts as voiced
RANGE_DB = 25.0  # only frames within this of the loudest count (the default; classify.voiced_range_db)
NFFT = 512  # >= FRAME + LAG_HI
_WIN = np.hanning(FRAME)
_WAC = np.correlate(_WIN, _WIN, "full")[FRAME - 1 : FRAME + LAG_HI]
_WAC = _WAC / _WAC[0]


def longest_voiced_ms(x: np.ndarray, range_db: float = RANGE_DB) -> float:
    """Longest run of consecutive pitched hops (ms) in `x` (8 kHz) within `range_db` of its
    loudest hop. A narrower range asks for pitch that is sustained: a knock on a door rings at
    the panel's resonance (periodic) but decays 8-35 ms per time constant, a vowel holds."""
    x = np.asarray(x, dtype=np.float64)
    n = (len(x) - FRAME) // HOP + 1
    if n <= 0:
        return 0.0
    f = sliding_window_view(x, FRAME)[:: HOP][:n]
    f = (f - f.mean(axis=1, keepdims=True)) * _WIN
    # lags up to LAG_HI of a FRAME-long frame: an FFT of >= FRAME + LAG_HI points does not wrap
    z = np.fft.rfft(f, NFFT)
    ac = np.fft.irfft(z.real**2 + z.imag**2, NFFT)[:, : LAG_HI + 1]
    r = (ac / (ac[:, :1] + 1e-12) / _WAC)[:, LAG_LO:].max(axis=1)
    e = 10.0 * np.log10(ac[:, 0] + 1e-12)
    voiced = (r >= R_MIN) & (e >= e.max() - range_db)
    best = cur = 0
    for v in voiced:
        cur = cur + 1 if v else 0
        best = max(best, cur)
    return best * 1000.0 * HOP / SAMPLE_RATE
