"""Config: the shipped config.toml equals the built-in defaults; bad values are named."""

import dataclasses
import tomllib
from pathlib import Path

import pytest

from digitd import config

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_config_matches_builtin_defaults():
    data = tomllib.loads((ROOT / "config.toml").read_text())
    defaults = config.as_dict(config.Config())
    assert set(data) == set(defaults)
    for section, table in defaults.items():
        assert set(data[section]) == set(table), section
        for key, value in table.items():
            assert data[section][key] == value, f"{section}.{key}"


def test_override_wins_and_is_typed(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("[vad]\naggressiveness = 1\n")
    cfg = config.load(p, ["endpoint.hangover_ms=200", "run.speed=max", "audio.device=pulse"])
    assert cfg.vad.aggressiveness == 1
    assert cfg.endpoint.hangover_ms == 200
    assert cfg.run.speed == "max"
    assert cfg.audio.device == "pulse"


@pytest.mark.parametrize(
    "text, needle",
    [
        ("[vad]\naggressiveness = 5\n", "vad.aggressiveness"),
        ("[audio]\nframe_ms = 25\n", "audio.frame_ms"),
        ("[endpoint]\nhangover_ms = -10\n", "endpoint.hangover_ms"),
        ("[endpoint]\nhangover = 10\n", "endpoint.hangover"),
        ("[nope]\nx = 1\n", "[nope]"),
        ("[vad]\naggressiveness = \"high\"\n", "vad.aggressiveness"),
        ("[endpoint]\nsplit_dips = 1\n", "endpoint.split_dips"),
        ("[run]\nspeed = \"fast\"\n", "run.speed"),
        ("[serve]\nwait_clients = 2\n", "needs serve.address"),
        ("[group]\npause_ms = 0\n", "group.pause_ms"),
        ("[vad\n", "invalid TOML"),
        ("[classify]\nreject_threshold = nan\n", "classify.reject_threshold: expected a finite number"),
        ("[audio]\nring_seconds = inf\n", "audio.ring_seconds: expected a finite number"),
        ("[exec]\ncommand = \"echo 'open\"\n", "exec.command: cannot split"),
    ],
)
def test_bad_config_is_rejected_with_key_name(tmp_path, text, needle):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(config.ConfigError) as e:
        config.load(p)
    assert needle in str(e.value)


def test_bad_override_rejected():
    with pytest.raises(config.ConfigError, match="vad.aggressiveness"):
        config.load(None, ["vad.aggressiveness=9"])
    with pytest.raises(config.ConfigError, match="section.key=value"):
        config.load(None, ["novalue"])


def test_every_knob_has_a_range_or_is_free_text():
    """A number knob without bounds or choices would take any value a typo gives it."""
    for sec in dataclasses.fields(config.Config):
        for f in dataclasses.fields(sec.default_factory()):
            meta = f.metadata
            assert meta is not None and {"lo", "hi", "choices"} <= set(meta), f"{sec.name}.{f.name}"
            if f.type in ("int", "float", int, float):
                bounded = any(meta[k] is not None for k in ("lo", "hi", "choices"))
                assert bounded, f"{sec.name}.{f.name}: a number with no range"


def test_not_a_number_is_refused_on_the_command_line():
    """NaN passes every `<` test: it would switch a bar such as reject_threshold off silently."""
    for text in ("classify.reject_threshold=nan", "vad.gain_target_db=inf", "audio.ring_seconds=-inf"):
        with pytest.raises(config.ConfigError, match="finite number"):
            config.load(None, [text])


def test_a_config_from_before_the_cut_rule_had_modes_still_loads(tmp_path):
    """`endpoint.cut_is_background` was a bool until stop 27: false meant never, true the
    "scarce" rule. An old config file keeps its meaning; a wrong value still gets one line."""
    old = tmp_path / "config.toml"
    for value, mode in (("false", "off"), ("true", "scarce")):
        old.write_text(f"[endpoint]\ncut_is_background = {value}\n")
        assert config.load(old).endpoint.cut_is_background == mode
    assert config.load(None, ["endpoint.cut_is_background=true"]).endpoint.cut_is_background == "scarce"
    with pytest.raises(config.ConfigError, match="endpoint.cut_is_background"):
        config.load(None, ["endpoint.cut_is_background=sometimes"])
