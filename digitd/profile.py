"""User profiles: a speaker's own takes of the ten digits, and the model adapted to them.

Why: a daemon on someone's desk hears one person, and a speaker-dependent model beats any
general one on that speaker. The adaptation is a MAP fine-tune of the embedding member's digit
scores (numpy + scipy, well under a second): start from the base model's weights, fit the
user's takes, and pull back toward the base weights with an L2 penalty, so no base training
data is needed and a handful of takes cannot wander far. The member's P(other), which is what
rejects non-digit words and noise, stays the base model's, and the joined confidence is capped at
the base model's: only "which digit, given it is one" is adapted, never "whether it is one".

A profile lives in one folder (`users/NAME/` under the XDG data dir, `[user] dir` in config):
the takes as WAV files (`takes/{digit}_{n}.wav`), the adaptation as a data-only `.npz` (no
pickle; read with allow_pickle=False) and a small JSON card: when it was made, the base model
it adapts (the model file's SHA-256), takes per digit and accuracy on the takes before/after.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from digitd.errors import DigitdError
from digitd.features import DEFAULT_PARAMS, trim
from digitd.model import DigitModel, EmbedMember, Features, join_embedding, sha256_file
from digitd.runtime import Runtime, score

FORMAT = "digitd-profile/1"
ADAPTED = "adapted.npz"
CARD = "profile.json"
TAKES = "takes"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class ProfileError(DigitdError):
    """A profile that cannot be made or used, with a one-line reason."""


# ---- the adaptation (the daemon's side: numpy and scipy only) -----------------------------------


def standardize(lr: Runtime, x: np.ndarray) -> np.ndarray:
    """The member's own StandardScaler steps: its logistic regression works on these."""
    z = np.atleast_2d(np.asarray(x, dtype=np.float64))
    for step in lr.get("pre", []):
        z = (z - step["mean"]) / step["scale"]
    return z


def fit_digits(lr: Runtime, X: np.ndarray, y: np.ndarray, n_digits: int, pull: float) -> tuple[np.ndarray, np.ndarray]:
    """MAP fine-tune of the digit rows of the member's logistic regression.

    Minimises  sum_i CE(softmax over digits(W z_i + b), y_i) + pull / 2 * |[W, b] - [W0, b0]|^2
    from [W0, b0] = the base model's digit rows, with L-BFGS. `y` holds digit indices. The softmax
    runs over the digits only: it is P(digit | a digit), the part the user's takes say anything
    about (they are all digits, so they cannot teach the `other` row anything honest)."""
    from scipy.optimize import minimize

    z = standardize(lr, X)
    W0 = np.asarray(lr["coef"], dtype=np.float64)[:n_digits]
    b0 = np.asarray(lr["intercept"], dtype=np.float64)[:n_digits]
    theta0 = np.concatenate([W0, b0[:, None]], axis=1)  # (digits, dim + 1)
    za = np.concatenate([z, np.ones((len(z), 1))], axis=1)
    onehot = np.eye(n_digits)[np.asarray(y, dtype=np.int64)]

    def loss(flat: np.ndarray) -> tuple[float, np.ndarray]:
        theta = flat.reshape(theta0.shape)
        logits = za @ theta.T
        logits -= logits.max(axis=1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        delta = theta - theta0
        f = -float(np.sum(onehot * logp)) + 0.5 * pull * float(np.sum(delta * delta))
        g = (np.exp(logp) - onehot).T @ za + pull * delta
        return f, g.ravel()

    res = minimize(loss, theta0.ravel(), jac=True, method="L-BFGS-B", options={"maxiter": 500})
    theta = res.x.reshape(theta0.shape)
    return theta[:, :-1].copy(), theta[:, -1].copy()


@dataclass
class AdaptedEmbed(EmbedMember):
    """The embedding member with the user's digit rows: P(other) from the base rows, P(digit | a
    digit) from the adapted ones. Joined with the other members, the profile decides *which*
    digit; *whether* an utterance is a digit stays the shipped model's call: the confidence is
    capped at the shipped model's own (`join`), so nothing the shipped model rejects passes
    with a profile (a non-digit word from the user is rejected at least as often)."""

    coef: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    intercept: np.ndarray = field(default_factory=lambda: np.zeros(0))
    base_weight: float = 0.5  # the shipped member's share, for the shipped model's confidence

    def proba(self, vectors: np.ndarray, shipped: np.ndarray | None = None) -> np.ndarray:
        """P(digit) from the adapted rows on pooled `vectors`, P(other) from the shipped member
        (`shipped`: its probabilities when already computed, e.g. by its sequence head)."""
        v = np.atleast_2d(vectors)
        base = score(self.lr, v) if shipped is None else shipped
        d = score({"kind": "lr", "pre": self.lr.get("pre", []), "coef": self.coef, "intercept": self.intercept}, v)
        return np.concatenate([d * (1.0 - base[:, -1:]), base[:, -1:]], axis=1)

    def join_both(self, base: np.ndarray, feats: Features,
                  pe: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        if pe is None:
            pe = EmbedMember.utterance_proba(self, feats)  # the shipped member's own scores
        mine = join_embedding(base, self.proba(feats.embed, pe), self.weight, self.power)
        shipped = join_embedding(base, pe, self.base_weight, self.power)
        top = mine.max(axis=1, keepdims=True)
        return mine * np.minimum(1.0, shipped.max(axis=1, keepdims=True) / np.maximum(top, 1e-12)), shipped


def adapt_member(member: EmbedMember, X: np.ndarray, y: Sequence[str], *, pull: float, weight: float) -> AdaptedEmbed:
    """The member adapted to rows X (pooled embeddings) of digit labels y; `weight` = its share
    of the digit average for this user (the base member's share is member.weight)."""
    digits = member.classes[:-1]
    idx = np.asarray([digits.index(str(label)) for label in y], dtype=np.int64)
    coef, intercept = fit_digits(member.lr, X, idx, len(digits), pull)
    base = {f.name: getattr(member, f.name) for f in dataclasses.fields(EmbedMember)}
    return AdaptedEmbed(**(base | {"weight": weight}), coef=coef, intercept=intercept, base_weight=member.weight)


def take_rows(member: EmbedMember, audio: np.ndarray) -> list[np.ndarray]:
    """The rows one take adds: the take as cut and its trimmed word, as the base was trained."""
    return [member.frontend.pooled(audio), member.frontend.pooled(trim(audio, DEFAULT_PARAMS))]


# ---- storage --------------------------------------------------------------------------------


def users_dir(cfg: Any) -> Path:
    """[user] dir, else $XDG_DATA_HOME/digitd/users, else ~/.local/share/digitd/users. A missing
    folder is fine (no profiles yet; enrolling makes it); a file in its place is a mistake."""
    if cfg.user.dir:
        root = Path(cfg.user.dir).expanduser()
    else:
        base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        root = Path(base).expanduser() / "digitd" / "users"
    if root.exists() and not root.is_dir():
        raise ProfileError(f"{root}: not a folder (user.dir holds one folder per profile)")
    return root


def profile_dir(cfg: Any, name: str) -> Path:
    if not NAME_RE.match(name or ""):
        raise ProfileError(f"{name!r} is not a usable user name (letters, digits, '.', '_', '-'; up to 64)")
    return users_dir(cfg) / name


def model_id(model: DigitModel) -> str:
    """The base model's identity: its file's SHA-256 (as its card records it)."""
    card = model.meta.get("card") or {}
    sha = card.get("sha256")
    if not sha:
        path = model.meta.get("path")
        sha = sha256_file(path) if path else "unsaved"
    return str(sha)


def read_card(pdir: Path) -> dict[str, Any]:
    try:
        card = json.loads((pdir / CARD).read_text())
    except FileNotFoundError:
        raise ProfileError(f"no profile {pdir.name!r} in {pdir.parent} (make one: digitd enroll --user {pdir.name})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ProfileError(f"{pdir / CARD}: unreadable profile card ({type(e).__name__})") from None
    if not isinstance(card, dict) or card.get("format") != FORMAT:
        raise ProfileError(f"{pdir / CARD}: not a digitd profile (expected format {FORMAT})")
    return card


def stored_takes(pdir: Path) -> list[tuple[str, Path]]:
    """(digit, path) of every take in the profile, sorted by digit and take number."""
    out = []
    for p in (pdir / TAKES).glob("*.wav") if (pdir / TAKES).is_dir() else []:
        m = re.match(r"^(\d)_(\d+)\.wav$", p.name)
        if m:
            out.append((m[1], int(m[2]), p))
    return [(d, p) for d, _, p in sorted(out)]


def add_takes(pdir: Path, takes: Sequence[tuple[str, np.ndarray]]) -> list[Path]:
    """Write new takes after the stored ones (re-running enroll adds takes)."""
    from digitd.audio import write_wav

    try:
        pdir.mkdir(parents=True, exist_ok=True, mode=0o700)  # recordings of a person's voice: theirs alone
        (pdir / TAKES).mkdir(exist_ok=True)
    except OSError as e:
        raise ProfileError(f"{pdir}: cannot write the profile ({e.strerror})") from None
    count: dict[str, int] = {}
    for d, p in stored_takes(pdir):
        count[d] = max(count.get(d, 0), int(p.stem.split("_")[1]) + 1)
    paths = []
    for digit, audio in takes:
        n = count.get(digit, 0)
        count[digit] = n + 1
        path = pdir / TAKES / f"{digit}_{n}.wav"
        write_wav(path, audio)
        paths.append(path)
    return paths


def _with_member(model: DigitModel, member: EmbedMember) -> DigitModel:
    """A view of `model` whose embedding member is `member` (arrays shared, nothing copied)."""
    import copy

    out = copy.copy(model)
    out.embed = member
    return out


def _accuracy(models: Sequence[DigitModel], feats: Sequence[Any], labels: Sequence[str]) -> list[float]:
    return [float(np.mean([m.classify(f).label == y for f, y in zip(feats, labels)])) if labels else 0.0 for m in models]


def build(cfg: Any, name: str, model: DigitModel, reason: str = "enroll") -> dict[str, Any]:
    """Adapt `model` to every stored take of user `name`; write adapted.npz and the card.
    Accuracy on the takes: before (base model), after (adapted, fitted on them) and, when every
    digit has 2+ takes, held out (fitted on half the takes, scored on the other half)."""
    from digitd.audio import AudioError, load_wav

    if model.embed is None:
        raise ProfileError("this model has no speech-embedding member, which a user profile adapts")
    pdir = profile_dir(cfg, name)
    takes = stored_takes(pdir)
    if not takes:
        raise ProfileError(f"user {name!r} has no takes to adapt to")
    t0 = time.perf_counter()
    audio, labels = [], []
    for d, p in takes:
        try:
            audio.append(load_wav(p))
        except AudioError as e:
            raise ProfileError(f"profile {name!r}: {e}") from None
        labels.append(d)
    rows = [take_rows(model.embed, x) for x in audio]
    X = np.asarray([r for rs in rows for r in rs], dtype=np.float32)
    y = [d for d, rs in zip(labels, rows) for _ in rs]
    member = adapt_member(model.embed, X, y, pull=cfg.user.pull, weight=cfg.user.weight)
    adapt_s = time.perf_counter() - t0
    feats = [model.features(x) for x in audio]
    before, after = _accuracy([model, _with_member(model, member)], feats, labels)
    per_digit = {d: labels.count(d) for d in sorted(set(labels))}
    held_out = None
    if min(per_digit.values()) >= 2:  # two folds: even-numbered takes of each digit vs odd
        nth = [labels[:i].count(d) for i, d in enumerate(labels)]
        hits = []
        for fold in (0, 1):
            tr = [i for i in range(len(labels)) if nth[i] % 2 != fold]
            te = [i for i in range(len(labels)) if nth[i] % 2 == fold]
            Xf = np.asarray([r for i in tr for r in rows[i]], dtype=np.float32)
            m = adapt_member(model.embed, Xf, [labels[i] for i in tr for _ in rows[i]], pull=cfg.user.pull, weight=cfg.user.weight)
            hits += [_with_member(model, m).classify(feats[i]).label == labels[i] for i in te]
        held_out = float(np.mean(hits))
    path = pdir / ADAPTED
    try:
        np.savez(path, coef=member.coef, intercept=member.intercept, X=X,
                 y=np.asarray([member.classes.index(v) for v in y], dtype=np.int64))
    except OSError as e:
        raise ProfileError(f"{path}: cannot write the profile ({e.strerror})") from None
    old = {}
    try:
        old = read_card(pdir)
    except ProfileError:
        pass
    card = {
        "format": FORMAT,
        "user": name,
        "created": old.get("created") or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model": {"sha256": model_id(model), "file": Path(str(model.meta.get("path", ""))).name,
                  "frontend_sha256": sha256_file(model.embed.source)},
        "takes": per_digit,
        "n_takes": len(labels),
        "accuracy": {"before": before, "after": after, "after_held_out": held_out},
        "settings": {"pull": cfg.user.pull, "weight": cfg.user.weight},
        "adapt_s": round(adapt_s, 3),
        "adapted_sha256": sha256_file(path),
        "built_by": reason,
    }
    try:
        (pdir / CARD).write_text(json.dumps(card, indent=2) + "\n")
    except OSError as e:
        raise ProfileError(f"{pdir / CARD}: cannot write the profile ({e.strerror})") from None
    return card


def load_member(pdir: Path, card: dict[str, Any], model: DigitModel) -> AdaptedEmbed:
    """The stored adaptation, read as data only; ProfileError when it does not fit `model`."""
    path = pdir / ADAPTED
    if not path.is_file() or sha256_file(path) != card.get("adapted_sha256"):
        raise ProfileError(f"{path}: missing or does not match its card")
    try:
        with np.load(path, allow_pickle=False) as z:
            coef, intercept = z["coef"].astype(np.float64), z["intercept"].astype(np.float64)
    except (OSError, ValueError, KeyError, EOFError) as e:
        raise ProfileError(f"{path}: unreadable ({type(e).__name__})") from None
    base = model.embed
    n, dim = len(base.classes) - 1, base.lr["coef"].shape[1]
    if coef.shape != (n, dim) or intercept.shape != (n,) or not (np.all(np.isfinite(coef)) and np.all(np.isfinite(intercept))):
        raise ProfileError(f"{path}: arrays do not fit this model's embedding member")
    s = card.get("settings", {})
    fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(EmbedMember)}
    return AdaptedEmbed(**(fields | {"weight": float(s.get("weight", base.weight))}), coef=coef, intercept=intercept,
                        base_weight=base.weight)


def apply(model: DigitModel, cfg: Any, name: str, notice: Any = None) -> DigitModel:
    """`model` with user `name`'s adaptation. A profile made for another base model (or whose
    adaptation is damaged) is rebuilt from its stored takes, and `notice` is told why; without
    takes it is refused."""
    if model.embed is None:
        raise ProfileError("this model has no speech-embedding member, which a user profile adapts")
    pdir = profile_dir(cfg, name)
    card = read_card(pdir)
    want, have = model_id(model), str(card.get("model", {}).get("sha256", ""))
    built = card.get("settings", {})
    now = {"pull": cfg.user.pull, "weight": cfg.user.weight}
    why = None
    if have != want:
        why = f"made for another model ({have[:12]}), this one is {want[:12]}"
    elif any(built.get(k) != v for k, v in now.items()):
        why = f"made with {', '.join(f'{k} {built.get(k)}' for k in now)}, [user] now says {', '.join(f'{k} {v}' for k, v in now.items())}"
    else:
        try:
            return _with_member(model, load_member(pdir, card, model))
        except ProfileError as e:
            why = str(e)
    n = len(stored_takes(pdir))
    if not n:
        raise ProfileError(f"profile {name!r} was {why} and holds no takes to rebuild it from; "
                           f"enroll again: digitd enroll --user {name}")
    build(cfg, name, model, reason=f"rebuilt: {why}")
    if notice:
        notice(f"profile {name!r} was {why}: rebuilt from its {n} takes")
    return _with_member(model, load_member(pdir, read_card(pdir), model))


def with_user(model: DigitModel, cfg: Any) -> DigitModel:
    """The model the commands use: with [user] name's profile, or as it is."""
    if not cfg.user.name:
        return model
    import sys

    return apply(model, cfg, cfg.user.name, notice=lambda m: print(f"digitd: {m}", file=sys.stderr, flush=True))


def list_profiles(cfg: Any) -> list[dict[str, Any]]:
    """Every profile's card (a damaged one as {"user": name, "error": ...})."""
    root = users_dir(cfg)
    out = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        try:
            out.append(read_card(d))
        except ProfileError as e:
            out.append({"user": d.name, "error": str(e)})
    return out


def remove(cfg: Any, name: str) -> Path:
    """Delete a profile folder (only one that holds a profile card)."""
    pdir = profile_dir(cfg, name)
    if not (pdir / CARD).is_file():
        raise ProfileError(f"no profile {name!r} in {pdir.parent}")
    shutil.rmtree(pdir)
    return pdir
