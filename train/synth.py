"""Synthetic speech from espeak-ng: unseen voices for the digit test, non-digit words for the
open-set test and the speech detector, and (only with `digitd train --synth`) digits from
training-only voices. The three voice sets are disjoint by espeak-ng variant, so a voice that
is tested on is never trained on (`test_synth.py` checks it). The evaluation voices and `say`
live in `digitd/espeak.py` (the room benchmark speaks with them too)."""

from __future__ import annotations

from pathlib import Path

from digitd import espeak
from digitd.espeak import DIGIT_WORDS, VOICES, EspeakError, espeak_available  # noqa: F401  (re-exported)
from train.data import DataError, Record

NONDIGIT_WORDS = ["hello", "yes", "stop", "cat", "go", "left", "right", "up", "down", "house", "water", "dog", "apple", "help", "okay", "wow"]


def say(text: str, voice: str, path: Path, *, speed: int = 150, pitch: int = 50) -> Path:
    """`digitd.espeak.say`, failures as the trainer's DataError."""
    try:
        return espeak.say(text, voice, path, speed=speed, pitch=pitch)
    except EspeakError as e:
        raise DataError(str(e)) from None


def espeak_digits(out_dir: Path, voices: list[str] = VOICES) -> list[Record]:
    """One clip per digit per voice (cached in `out_dir`): records with speaker = voice."""
    out_dir.mkdir(parents=True, exist_ok=True)
    recs = []
    for v in voices:
        tag = v.replace("+", "-")
        for d, word in enumerate(DIGIT_WORDS):
            p = out_dir / f"{d}_{tag}_0.wav"
            if not p.exists():
                say(word, v, p)
            recs.append(Record(str(d), tag, 0, "espeak", str(p)))
    return recs


# For the speech detector only (never the digit classifier): non-digit words and digits from
# voices and words disjoint from the evaluation ones above and from tests/data/nondigit, so the
# detector learns "digit or not" among synthetic voices rather than "synthetic or not".
DETECTOR_VOICES = ["en+m4", "en+m6", "en-us+m5", "en+aunty", "en+belinda", "en-us+anika", "en+grandma", "en+Alicia"]
DETECTOR_WORDS = [
    "the", "and", "fish", "table", "green", "music", "morning", "window", "happy", "red", "blue", "coffee",
    "paper", "night", "light", "phone", "garden", "silver", "open", "close", "start", "again", "maybe",
    "thanks", "please", "hi", "bye", "good", "bad", "time", "sun", "moon", "tree", "car", "book", "door",
    "ten", "eleven", "twenty", "hundred", "zebra", "seventy", "ninja", "free", "sixty", "hey", "what", "where",
]


def detector_clips(out_dir: Path) -> tuple[list[Path], list[Path]]:
    """(non-digit word clips, digit clips) for the speech detector, cached in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    words, digits = [], []
    for v in DETECTOR_VOICES:
        tag = v.replace("+", "-")
        for w in DETECTOR_WORDS:
            p = out_dir / f"w_{w}_{tag}.wav"
            if not p.exists():
                say(w, v, p)
            words.append(p)
        for d, w in enumerate(DIGIT_WORDS):
            p = out_dir / f"d{d}_{tag}.wav"
            if not p.exists():
                say(w, v, p)
            digits.append(p)
    return words, digits


# `digitd train --synth` only: digits from these espeak-ng variants, each in two accents with its
# own rate and pitch (seeded). None of these variants appears in VOICES, DETECTOR_VOICES or the
# voices of tests/data/nondigit (en-us+m2, en+f4); robotic/whisper variants are left out.
TRAIN_VARIANTS = [
    "Alex", "Andrea", "Andy", "AnxiousAndy", "Denis", "Diogo", "Gene", "Gene2", "Henrique", "Hugo", "Jacky", "Lee",
    "Marco", "Mario", "Michael", "Mike", "Nguyen", "Storm", "adam", "announcer", "antonio", "benjamin", "boris",
    "caleb", "david", "ed", "edward", "edward2", "gustave", "iven", "iven2", "iven3", "iven4", "kaukovalta", "klatt2",
    "klatt3", "klatt4", "klatt5", "klatt6", "m8", "marcelo", "max", "michel", "miguel", "norbert", "pablo", "paul",
    "pedro", "quincy", "rob", "robert", "sandro", "shelby", "steph", "steph2", "steph3", "travis", "victor", "zac",
]
TRAIN_ACCENTS = ["en", "en-us", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-us-nyc", "en-gb-x-gbclan", "en-gb-x-gbcwmd"]


def variant_of(voice: str) -> str:
    return voice.split("+", 1)[1] if "+" in voice else ""


def training_digits(out_dir: Path, seed: int = 0, jobs: int = 2) -> list[Record]:
    """Ten digits per (variant, accent, rate, pitch) "speaker": 59 variants x 2 accents = 1,180
    clips, cached in `out_dir`. Records have split "synth" (training only, never evaluated)."""
    import random

    from joblib import Parallel, delayed

    rng = random.Random(seed)
    jobs_ = []
    for v in TRAIN_VARIANTS:
        for accent in rng.sample(TRAIN_ACCENTS, 2):
            rate, pitch = rng.randint(120, 190), rng.randint(20, 80)
            for d, word in enumerate(DIGIT_WORDS):
                jobs_.append((f"{accent}+{v}", rate, pitch, d, word))
    out_dir.mkdir(parents=True, exist_ok=True)

    def one(voice: str, rate: int, pitch: int, d: int, word: str) -> Record:
        tag = f"{voice.replace('+', '-')}-s{rate}-p{pitch}"
        p = out_dir / f"{d}_{tag}_0.wav"
        if not p.exists():
            say(word, voice, p, speed=rate, pitch=pitch)
        return Record(str(d), tag, 0, "synth", str(p))

    # always this machine's processes (never a --dask cluster): the cache is this machine's folder
    return list(Parallel(n_jobs=jobs, backend="loky")(delayed(one)(*j) for j in jobs_))
