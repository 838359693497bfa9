"""What the classifier hears of an utterance (classify.context): the trimmed word, or the word with
the pre-roll and hangover the endpointer kept around it, as `digitd predict` hears a clip. Real
FSDD digits and real babble of unseen Speech Commands talkers."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from digitd.audio import float_to_int16
from digitd.config import Config, EndpointConfig
from digitd.corpora import available
from digitd.events import DigitEvent, RejectedEvent
from digitd.hear import front_end
from digitd.pipeline import Pipeline
from digitd.sources import FileSource
from digitd.synth import make_stream

FRAME = 240


def segment(audio: np.ndarray) -> list:
    """The utterances the pipeline cuts: its own DC blocker, VAD (the gain included) and endpointer."""
    dc, vad, ep = front_end(Config())
    out = []
    for i in range(0, len(audio) - FRAME + 1, FRAME):
        f = dc(audio[i : i + FRAME])
        out += ep.push(f, vad(float_to_int16(f)))
    return out + ep.flush()


def find(hay: np.ndarray, needle: np.ndarray) -> int:
    """Index of `needle` as a contiguous run inside `hay` (-1 if it is not one)."""
    for k in range(len(hay) - len(needle) + 1):
        if hay[k] == needle[0] and np.array_equal(hay[k : k + len(needle)], needle):
            return k
    return -1


def test_context_holds_the_trimmed_word_with_audio_around_it(fsdd):
    audio, truth = make_stream(12, seed=4, noise="pink", snr_db=30.0, data_dir=fsdd)
    utts = segment(audio)
    assert len(utts) == len(truth)
    longer = 0
    for u in utts:
        assert u.context is not None and not u.talk_around  # quiet steady room tone, no talk
        k = find(u.context, u.audio)
        assert k >= 0, "the trimmed word is not a slice of its context"
        assert k == u.context_offset
        longer += len(u.context) > len(u.audio)
        # the context is what the endpointer kept: at most pre-roll + start window before the word
        cfg = EndpointConfig()
        assert k <= (cfg.preroll_ms / 1000 + cfg.start_window * 0.03) * 8000 + FRAME
    assert longer >= len(utts) - 1  # the word's quiet edges are trimmed off nearly always


CORPORA = ("speech-commands-digits", "audiomnist-digits", "speech-commands-words")


@pytest.mark.skipif(not set(CORPORA) <= set(available()), reason="needs the Speech Commands / AudioMNIST folders")
def test_words_over_babble_are_flagged_and_over_steady_noise_not():
    from digitd.room import Condition, make_room_stream

    b = dataclasses.replace(Config().bench, room_words=16, room_background_s=8.0, room_nondigit_share=0.0,
                            room_sound_share=0.0, room_espeak_share=0.0)
    flags = {}
    for name, kind in (("babble_10db", "babble"), ("white_10db", "white")):
        st = make_room_stream(Condition(name, kind, 10.0), b)
        utts = [u for u in segment(st.audio) if u.start_sample > 10 * 8000]  # once the background is learned
        assert utts
        flags[kind] = np.mean([u.talk_around for u in utts])
    assert flags["babble"] >= 0.8 and flags["white"] == 0.0


def test_pipeline_classifies_the_context_exactly_as_predict_does(model, fsdd):
    audio, truth = make_stream(6, seed=2, noise="pink", snr_db=30.0, data_dir=fsdd)
    utts = segment(audio)
    for mode, want in (("always", [model.predict_wave(u.context) for u in utts]),
                       ("off", [model.predict_wave(u.audio, trimmed=True) for u in utts])):
        cfg = Config()
        cfg.classify.context = mode
        events = []

        class Sink:
            def handle(self, e) -> None:
                if isinstance(e, (DigitEvent, RejectedEvent)):
                    events.append(e)

            def close(self) -> None:
                pass

        Pipeline(cfg, model, [Sink()]).run(FileSource(audio, "max"))
        got = [(e.digit if isinstance(e, DigitEvent) else e.best, e.confidence) for e in events]
        assert [g[0] for g in got] == [p.label for p in want], mode
        assert np.allclose([g[1] for g in got], [p.confidence for p in want], atol=1e-4), mode
