"""`python -m train.enroll_eval`: how much `digitd enroll` helps a speaker the base never heard.

1. FSDD leave-one-speaker-out, light base: per fold the embedding member alone (train/embed.py's
   recipe: class-balanced LR, C = 0.03, the `other` class from the training-side negatives, rows
   as recorded / trimmed / one real-noise copy; no espeak-ng digits) fitted without the held-out
   speaker. The speaker enrolls 1 and 2 takes per digit from their training takes (5, 6), then
   their official test takes 0-4 are scored: before = base member, after = adapted member; then
   the same folds with a stand-in for the other members joined the way the daemon joins them
   (pooled-MFCC LR + SVM fitted without the speaker). Settings are chosen on their training takes
   10-49 (`--choose`), never on 0-4.
2. The shipped model (models/default.npz, every member) on the unseen AudioMNIST speakers
   (digits 0-3): each enrolls its first 1 / 2 takes per digit, the rest are scored, at the
   daemon's reject threshold.
3. Unseen Speech Commands speakers who said a digit twice or more: the first clip of each digit
   enrolled (a partial enrollment), their other digit clips scored, and their own non-digit words
   (the words folder shares the speaker ids) scored with their own profile and without.
4. Open set with a profile: unseen Speech Commands non-digit words and noise (961 + 99) and the
   unseen digits, scored by the shipped model with each of 20 profiles and without.
5. Strong synthetic accents (espeak-ng language voices reading English): digits right and
   rejected, and the same voice's non-digit words rejected, with and without its profile.

Pooled embeddings are cached under $TMPDIR/digitd-enroll-eval (the first run takes a few minutes).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from digitd.audio import load_wav
from digitd.corpora import available, corpus_clips, split_clips
from digitd.model import OTHER, Features, load_model
from digitd.paths import fsdd_dir
from digitd.profile import adapt_member, take_rows
from digitd.voicing import longest_voiced_ms

CACHE = Path(os.environ.get("TMPDIR", "/tmp")) / "digitd-enroll-eval"
DIGITS = [str(d) for d in range(10)]
ENROLL_TAKES = (5, 6)  # FSDD training takes used for enrollment (1 take: 5; 2 takes: 5, 6)
CHOOSE_TAKES = range(10, 50)  # FSDD training takes the settings are chosen on


def _console():
    from rich.console import Console

    return Console(stderr=True)


def fold_features(jobs: int = 1) -> dict[str, Any]:
    """Embedding rows of FSDD, the training side of the extra digit corpora and the negatives."""
    path = CACHE / "folds.npz"
    if path.is_file():
        z = np.load(path, allow_pickle=False)
        return {k: z[k] for k in z.files}
    from train.data import Record, load_folder
    from train.embed import embed_features, negative_records

    fsdd, _ = load_folder(fsdd_dir(), check_audio=False)
    root = available()
    extra = [Record(c.label, c.speaker, 0, "extra", str(c.path)) for name in ("speech-commands-digits", "audiomnist-digits")
             if name in root for c in corpus_clips(root[name], "digit") if not c.unseen]
    negs = negative_records([str(root[n]) for n in ("speech-commands-words", "speech-commands-noise") if n in root])
    recs = fsdd + extra + negs
    feats = embed_features(recs, noisy=1, seed=0, jobs=jobs)
    X = np.asarray([v for rows in feats for v in rows], np.float32)
    out = {
        "X": X,
        "rec": np.asarray([i for i, rows in enumerate(feats) for _ in rows]),
        "row": np.asarray([j for rows in feats for j in range(len(rows))]),
        "label": np.asarray([r.label for r in recs]),
        "speaker": np.asarray([r.speaker for r in recs]),
        "take": np.asarray([r.take for r in recs]),
        "fsdd": np.asarray([r.split in ("train", "test") for r in recs]),
        "path": np.asarray([r.path for r in recs]),
    }
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, **out)
    return out


def unseen_features(model) -> dict[str, Any]:
    """Per unseen clip (digits, words, noise): the shipped model's other members' digit
    probabilities, the pooled embedding as recorded and trimmed, the longest voiced stretch."""
    tag = model.meta["card"]["sha256"][:12]
    path = CACHE / f"unseen-{tag}.npz"
    if path.is_file():
        z = np.load(path, allow_pickle=False)
        return {k: z[k] for k in z.files}
    from rich.progress import track

    clips = split_clips(unseen=True)
    base, emb, embt, voiced = [], [], [], []
    for c in track(clips, description="unseen clips (shipped model)", console=_console(), transient=True):
        x = load_wav(c.path)
        f = model.features(x)
        base.append(model._pooled_and_cnn(f))
        rows = take_rows(model.embed, x)
        emb.append(rows[0])
        embt.append(rows[1])
        voiced.append(longest_voiced_ms(x))
    out = {"base": np.asarray(base), "E": np.asarray(emb), "Et": np.asarray(embt), "voiced": np.asarray(voiced),
           "label": np.asarray([c.label for c in clips]), "speaker": np.asarray([c.speaker for c in clips]),
           "kind": np.asarray([c.kind for c in clips]), "corpus": np.asarray([c.corpus for c in clips]),
           "name": np.asarray([c.path.name for c in clips])}
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, **out)
    return out


def fold_bases(F: dict[str, Any], C: float = 0.03) -> dict[str, dict[str, np.ndarray]]:
    """Per FSDD speaker: the embedding member's LR fitted without that speaker (cached)."""
    from digitd.runtime import compile_estimator
    from train.embed import fit_lr

    path = CACHE / f"bases-C{C:g}.npz"
    speakers = sorted(set(F["speaker"][F["fsdd"]]))
    if path.is_file():
        z = np.load(path, allow_pickle=False)
        return {sp: {k: z[f"{sp}.{k}"] for k in ("mean", "scale", "coef", "intercept")} for sp in speakers}
    spk_row = F["speaker"][F["rec"]]
    y_row = F["label"][F["rec"]]
    out: dict[str, dict[str, np.ndarray]] = {}
    con = _console()
    for sp in speakers:
        t = time.perf_counter()
        tr = spk_row != sp
        est, cols = fit_lr(F["X"][tr], y_row[tr], DIGITS, C)
        rt = compile_estimator(est)
        out[sp] = {"mean": rt["pre"][0]["mean"], "scale": rt["pre"][0]["scale"], "coef": rt["coef"][cols],
                   "intercept": rt["intercept"][cols]}
        con.print(f"  base without {sp}: {time.perf_counter() - t:.0f} s")
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{f"{sp}.{k}": v for sp, d in out.items() for k, v in d.items()})
    return out


def member_of(base: dict[str, np.ndarray]):
    from digitd.embedding import SpeechEmbedding
    from digitd.model import EmbedMember

    rt = {"kind": "lr", "pre": [{"mean": base["mean"], "scale": base["scale"]}], "coef": base["coef"],
          "intercept": base["intercept"]}
    return EmbedMember(SpeechEmbedding.load(), rt, DIGITS + [OTHER], 0.5, 1.0)


def pooled_folds(F: dict[str, Any]) -> dict[str, np.ndarray]:
    """A stand-in for the other members in each FSDD fold: pooled-MFCC LR (C 0.03) + RBF-SVM (C 3,
    gamma 0.003) averaged, clean clips, fitted without the held-out speaker; its probabilities on
    every take of that speaker (cached). Far weaker than the shipped members (no augmentation, no
    CNN, no detector): it shows whether the adapted member's gain survives the join."""
    import warnings

    path = CACHE / "pooled-folds.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    from sklearn.ensemble import VotingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    from digitd.features import extract

    digit = np.flatnonzero((F["label"] != OTHER))
    first = {int(r): i for i, (r, w) in enumerate(zip(F["rec"], F["row"])) if w == 0}
    paths = F["path"][digit]
    M = np.asarray([extract(load_wav(str(pth))) for pth in paths])
    lab, spk, fs = F["label"][digit], F["speaker"][digit], F["fsdd"][digit]
    out: dict[str, np.ndarray] = {}
    for sp in sorted(set(spk[fs])):
        est = VotingClassifier([("lr", make_pipeline(StandardScaler(), LogisticRegression(C=0.03, max_iter=3000))),
                                ("svm", make_pipeline(StandardScaler(), SVC(C=3.0, gamma=0.003, probability=True, random_state=0)))],
                               voting="soft")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            est.fit(M[spk != sp], lab[spk != sp])
        te = np.flatnonzero(spk == sp)
        out[f"{sp}.p"] = est.predict_proba(M[te])[:, [list(est.classes_).index(d) for d in DIGITS]]
        out[f"{sp}.rows"] = np.asarray([first[int(digit[i])] for i in te])  # their as-recorded embedding rows in F
    np.savez(path, **out)
    return out


def fsdd_loso_joined(F: dict[str, Any], bases: dict[str, dict[str, np.ndarray]], pooled: dict[str, np.ndarray], pull: float,
                     weight: float, test_takes: Any) -> dict[str, Any]:
    """fsdd_loso with the pooled stand-in joined as the daemon joins its members (join_embedding)."""
    out: dict[str, Any] = {}
    rec, row = F["rec"], F["row"]
    for sp, base in bases.items():
        m = member_of(base)
        rows = pooled[f"{sp}.rows"]
        keep = np.isin(F["take"][rec[rows]], list(test_takes))
        rows, pb = rows[keep], pooled[f"{sp}.p"][keep]
        yt = F["label"][rec[rows]]
        acc = lambda mem: float(np.mean(np.asarray(DIGITS)[mem.join(pb, Features(np.zeros(0), embed=F["X"][rows])).argmax(1)] == yt))  # noqa: E731
        r = {"n": len(yt), "pooled": float(np.mean(np.asarray(DIGITS)[pb.argmax(1)] == yt)), "before": acc(m)}
        for k in (1, 2):
            e = np.flatnonzero(F["fsdd"][rec] & (F["speaker"][rec] == sp) & np.isin(F["take"][rec], list(ENROLL_TAKES[:k]))
                               & np.isin(row, [0, 1]))
            r[f"after_{k}"] = acc(adapt_member(m, F["X"][e], F["label"][rec[e]], pull=pull, weight=weight))
        out[sp] = r
    return out


ACCENT_VOICES = ("fr", "de", "es", "it", "pl", "sw", "ja", "vi")  # espeak-ng language voices reading English words
ACCENT_WORDS = ("up stop right off left go down on yes no happy sheila wow forward marvin learn cat bird house follow bed "
                "backward tree visual dog").split()  # the Speech Commands non-digit words


def accents(model, pull: float, weight: float, threshold: float, min_voiced: float) -> dict[str, Any]:
    """Strong synthetic accents: espeak-ng's language voices reading the English digit words by
    their own rules. Each enrolls 1 take per digit (rate 150, pitch 50; 2 takes: + pitch 42) and
    is scored on 4 other renderings (rate 130 / 170 x pitch 35 / 65): digits right and rejected,
    and the same voice's non-digit words (2 renderings) rejected, before / after."""
    from digitd.config import ClassifyConfig
    from digitd.espeak import DIGIT_WORDS, espeak_available, said
    from digitd.model import reject_reason
    from digitd.profile import _with_member
    from digitd.voicing import RANGE_DB

    if not espeak_available():
        return {}
    # the profile study's rejection: threshold and pitch at the default range, no agreement waiver
    rule = ClassifyConfig(reject_threshold=threshold, min_voiced_ms=min_voiced, voiced_range_db=RANGE_DB, agree_min=0.0)
    cache = CACHE / "espeak"
    test = [(130, 35), (130, 65), (170, 35), (170, 65)]
    out: dict[str, Any] = {}

    def scored(m, clips):
        preds = [(d, m.predict_wave(x), x) for d, x in clips]
        return (float(np.mean([p.label == d for d, p, _ in preds])),
                float(np.mean([reject_reason(x, p, rule) is not None for _, p, x in preds])))

    for v in ACCENT_VOICES:
        digits = [(str(d), load_wav(said(DIGIT_WORDS[d], v, cache, speed=s, pitch=p))) for s, p in test for d in range(10)]
        words = [(w, load_wav(said(w, v, cache, speed=s, pitch=p))) for s, p in test[:2] for w in ACCENT_WORDS]
        r: dict[str, Any] = {}
        r["before"], r["before_rejected"] = scored(model, digits)
        r["before_words_rejected"] = scored(model, words)[1]
        for k, takes in ((1, [(150, 50)]), (2, [(150, 50), (150, 42)])):
            X, y = [], []
            for s, p in takes:
                for d in range(10):
                    rows = take_rows(model.embed, load_wav(said(DIGIT_WORDS[d], v, cache, speed=s, pitch=p)))
                    X += rows
                    y += [str(d)] * len(rows)
            mm = _with_member(model, adapt_member(model.embed, np.asarray(X), y, pull=pull, weight=weight))
            r[f"after_{k}"], r[f"after_{k}_rejected"] = scored(mm, digits)
            r[f"after_{k}_words_rejected"] = scored(mm, words)[1]
        out[v] = r
    return out


def _digit_acc(pe: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.asarray(DIGITS)[pe[:, :-1].argmax(axis=1)] == y))


def fsdd_loso(F: dict[str, Any], bases: dict[str, dict[str, np.ndarray]], pull: float, test_takes: Any) -> dict[str, Any]:
    """Per held-out speaker and number of enrollment takes: member accuracy before / after."""
    rec, row, lab, spk, take = F["rec"], F["row"], F["label"], F["speaker"], F["take"]
    fs = F["fsdd"][rec]

    def rows(sp: str, takes: Any, which: list[int]) -> tuple[np.ndarray, np.ndarray]:
        r = np.flatnonzero(fs & (spk[rec] == sp) & np.isin(take[rec], list(takes)) & np.isin(row, which))
        return F["X"][r], lab[rec[r]]

    out: dict[str, Any] = {}
    for sp, base in bases.items():
        m = member_of(base)
        Xt, yt = rows(sp, test_takes, [0])  # the clip as recorded, as `digitd predict` sees it
        r = {"n": len(yt), "before": _digit_acc(m.proba(Xt), yt)}
        for k in (1, 2):
            Xe, ye = rows(sp, ENROLL_TAKES[:k], [0, 1])
            t = time.perf_counter()
            a = adapt_member(m, Xe, ye, pull=pull, weight=m.weight)
            r[f"fit_s_{k}"] = time.perf_counter() - t
            r[f"after_{k}"] = _digit_acc(a.proba(Xt), yt)
        out[sp] = r
    return out


def full_scores(model, U: dict[str, Any], member, idx: np.ndarray, threshold: float, min_voiced: float):
    """(labels, rejected) of the shipped model with `member` as its embedding member."""
    p = member.join(U["base"][idx], Features(np.zeros(0), embed=U["E"][idx]))  # pooled rows (no sequence head here)
    labels = np.asarray(model.classes)[p.argmax(axis=1)]
    conf = p.max(axis=1)
    rejected = (U["voiced"][idx] < min_voiced) | (conf < threshold) if min_voiced > 0 else conf < threshold
    return labels, rejected


def am_unseen(model, U: dict[str, Any], pull: float, weight: float, threshold: float, min_voiced: float) -> dict[str, Any]:
    """Unseen AudioMNIST speakers: enroll the first 1 / 2 takes of each digit, score the rest.
    Also returns each profile's member, for the open-set check."""
    am = (U["corpus"] == "audiomnist-digits") & (U["kind"] == "digit")
    out: dict[str, Any] = {"speakers": {}, "members": {}}
    for sp in sorted(set(U["speaker"][am])):
        mine = np.flatnonzero(am & (U["speaker"] == sp))
        order = mine[np.argsort([int(n.rsplit("_", 1)[1].split(".")[0]) for n in U["name"][mine]], kind="stable")]
        r: dict[str, Any] = {"digits": "".join(sorted(set(U["label"][mine])))}
        for k in (1, 2):
            seen: dict[str, int] = {}
            enroll, test = [], []
            for i in order:
                d = U["label"][i]
                (enroll if seen.get(d, 0) < k else test).append(i)
                seen[d] = seen.get(d, 0) + 1
            test = np.asarray(test, dtype=np.int64)
            Xe = np.concatenate([U["E"][enroll], U["Et"][enroll]])
            ye = list(U["label"][enroll]) * 2
            member = adapt_member(model.embed, Xe, ye, pull=pull, weight=weight)
            out["members"][(sp, k)] = member
            if not len(test):
                continue
            for tag, mem in (("before", model.embed), ("after", member)):
                labels, rej = full_scores(model, U, mem, test, threshold, min_voiced)
                r[f"{tag}_{k}"] = float(np.mean(labels == U["label"][test]))
                r[f"{tag}_{k}_rejected"] = float(np.mean(rej))
            r[f"n_{k}"] = len(test)
        out["speakers"][sp] = r
    return out


def open_set(model, U: dict[str, Any], members: dict[Any, Any], threshold: float, min_voiced: float) -> dict[str, Any]:
    """Share of unseen non-digit words / noise rejected and of unseen digits rejected, without a
    profile and with each profile (mean, worst)."""
    kinds = {"words": np.flatnonzero(U["kind"] == "word"), "noise": np.flatnonzero(U["kind"] == "noise"),
             "digits": np.flatnonzero(U["kind"] == "digit")}
    out: dict[str, Any] = {}
    for kind, idx in kinds.items():
        _, rej0 = full_scores(model, U, model.embed, idx, threshold, min_voiced)
        rates = [float(np.mean(full_scores(model, U, m, idx, threshold, min_voiced)[1])) for m in members.values()]
        out[kind] = {"n": len(idx), "without": float(np.mean(rej0)), "with_mean": float(np.mean(rates)),
                     "with_min": float(np.min(rates)), "with_max": float(np.max(rates))}
    return out


def fsdd_profiles(model, F: dict[str, Any], pull: float, weight: float) -> dict[Any, Any]:
    """Profiles of the FSDD speakers on the shipped model (speakers it trained on: used only as
    more users for the open-set check)."""
    rec, row, lab, spk, take = F["rec"], F["row"], F["label"], F["speaker"], F["take"]
    out = {}
    for sp in sorted(set(spk[F["fsdd"]])):
        for k in (1, 2):
            i = np.flatnonzero(F["fsdd"][rec] & (spk[rec] == sp) & np.isin(take[rec], list(ENROLL_TAKES[:k])) & np.isin(row, [0, 1]))
            out[(sp, k)] = adapt_member(model.embed, F["X"][i], lab[rec[i]], pull=pull, weight=weight)
    return out


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def report(pull: float, weight: float, choose: bool) -> dict[str, Any]:
    from rich.console import Console
    from rich.table import Table

    from digitd.config import Config

    cfg = Config()
    th, mv = cfg.classify.reject_threshold, cfg.classify.min_voiced_ms
    con = Console()
    t0 = time.perf_counter()
    F = fold_features()
    bases = fold_bases(F)
    model = load_model()
    U = unseen_features(model)
    out: dict[str, Any] = {"pull": pull, "weight": weight, "threshold": th}

    if choose:
        t = Table(title="choosing the pull: FSDD LOSO (embedding member), scored on training takes 10-49 (never 0-4)")
        for c in ("pull", "1 take: mean / worst %", "2 takes: mean / worst %", "unseen words rejected, 20 profiles: mean (worst) %"):
            t.add_column(c, justify="right")
        base = fsdd_loso(F, bases, 1.0, CHOOSE_TAKES)
        t.add_row("base", *[f"{_pct(np.mean([r['before'] for r in base.values()]))} / {_pct(min(r['before'] for r in base.values()))}"] * 2,
                  "")
        for p in (0.03, 0.1, 0.3, 1.0, 3.0):
            res = fsdd_loso(F, bases, p, CHOOSE_TAKES)
            members = dict(am_unseen(model, U, p, weight, th, mv)["members"]) | fsdd_profiles(model, F, p, weight)
            o = open_set(model, U, members, th, mv)["words"]
            t.add_row(f"{p:g}", *[f"{_pct(np.mean([r[f'after_{k}'] for r in res.values()]))} / {_pct(min(r[f'after_{k}'] for r in res.values()))}"
                                  for k in (1, 2)], f"{_pct(o['with_mean'])} ({_pct(o['with_min'])}); without {_pct(o['without'])}")
        con.print(t)
        pooled = pooled_folds(F)
        t = Table(title=f"choosing the adapted member's weight for an enrolled user (pull {pull:g}): FSDD folds joined with the "
                        "stand-in (takes 10-49), unseen words, unseen Speech Commands speakers' held-out digits")
        for c in ("weight", "joined, 1 take: mean / worst %", "2 takes: mean / worst %", "unseen words rejected, 20 profiles: mean %",
                  "Speech Commands speakers' digits %"):
            t.add_column(c, justify="right")
        for w in (0.5, 0.7, 0.9):
            j = fsdd_loso_joined(F, bases, pooled, pull, w, CHOOSE_TAKES)
            members = dict(am_unseen(model, U, pull, w, th, mv)["members"]) | fsdd_profiles(model, F, pull, w)
            o = open_set(model, U, members, th, mv)["words"]
            sc = sc_unseen(model, U, pull, w, th, mv)
            t.add_row(f"{w:g}", *[f"{_pct(np.mean([r[f'after_{k}'] for r in j.values()]))} / {_pct(min(r[f'after_{k}'] for r in j.values()))}"
                                  for k in (1, 2)], f"{_pct(o['with_mean'])} (without {_pct(o['without'])})",
                      _pct(sum(r["after_correct"] for r in sc.values()) / sum(r["n"] for r in sc.values())))
        con.print(t)

    loso = fsdd_loso(F, bases, pull, range(0, 5))
    later = fsdd_loso(F, bases, pull, CHOOSE_TAKES)
    out["fsdd_loso"], out["fsdd_loso_takes_10_49"] = loso, later
    t = Table(title=f"FSDD leave-one-speaker-out: base = the embedding member fitted without the speaker; enrolled from "
                    f"training takes 5 (1 take) / 5-6 (2 takes); scored on the official test takes 0-4 and on takes 10-49 (pull {pull:g})")
    for c in ("speaker", "0-4: before %", "after, 1 take %", "after, 2 takes %", "10-49: before %", "after, 1 take %",
              "after, 2 takes %", "fit s"):
        t.add_column(c, justify="right" if c != "speaker" else "left")
    keys = ("before", "after_1", "after_2")
    for sp, r in loso.items():
        t.add_row(sp, *[_pct(r[k]) for k in keys], *[_pct(later[sp][k]) for k in keys], f"{max(r['fit_s_1'], r['fit_s_2']):.3f}")
    t.add_section()
    for name, fn in (("mean", np.mean), ("worst", np.min)):
        t.add_row(name, *[_pct(fn([r[k] for r in loso.values()])) for k in keys], *[_pct(fn([r[k] for r in later.values()])) for k in keys],
                  "", style="bold")
    con.print(t)

    pooled = pooled_folds(F)
    j04 = fsdd_loso_joined(F, bases, pooled, pull, weight, range(0, 5))
    j10 = fsdd_loso_joined(F, bases, pooled, pull, weight, CHOOSE_TAKES)
    out["fsdd_loso_joined"], out["fsdd_loso_joined_takes_10_49"] = j04, j10
    t = Table(title=f"the same folds with a stand-in for the other members joined (pooled-MFCC LR + SVM without the speaker, "
                    f"clean clips; weight {weight:g}), accuracy %")
    for c in ("speaker", "0-4: stand-in alone", "joined before", "after, 1 take", "after, 2 takes", "10-49: stand-in alone",
              "joined before", "after, 1 take", "after, 2 takes"):
        t.add_column(c, justify="right" if c != "speaker" else "left")
    jk = ("pooled", "before", "after_1", "after_2")
    for sp in j04:
        t.add_row(sp, *[_pct(j04[sp][k]) for k in jk], *[_pct(j10[sp][k]) for k in jk])
    t.add_section()
    for name, fn in (("mean", np.mean), ("worst", np.min)):
        t.add_row(name, *[_pct(fn([r[k] for r in j04.values()])) for k in jk], *[_pct(fn([r[k] for r in j10.values()])) for k in jk],
                  style="bold")
    con.print(t)

    am = am_unseen(model, U, pull, weight, th, mv)
    out["audiomnist_unseen"] = am["speakers"]
    t = Table(title=f"unseen AudioMNIST speakers, shipped model (every member), first 1 / 2 takes per digit enrolled, "
                    f"the rest scored (pull {pull:g}, weight {weight:g}, reject threshold {th})")
    for c in ("speaker", "digits", "scored (1 / 2)", "before %", "after, 1 take %", "after, 2 takes %", "rejected before / after %"):
        t.add_column(c, justify="right" if c != "speaker" else "left")
    for sp, r in am["speakers"].items():
        t.add_row(sp, r["digits"], f"{r.get('n_1', 0)} / {r.get('n_2', 0)}", _pct(r.get("before_1")), _pct(r.get("after_1")),
                  _pct(r.get("after_2")), f"{_pct(r.get('before_1_rejected'))} / {_pct(r.get('after_1_rejected'))}")
    con.print(t)

    sc = sc_unseen(model, U, pull, weight, th, mv)
    out["speech_commands_unseen"] = sc
    tot = {k: sum(r.get(k, 0) for r in sc.values()) for k in ("enrolled", "n", "n_words", "before_correct", "after_correct",
                                                              "before_rejected_n", "after_rejected_n", "before_words_rejected_n",
                                                              "after_words_rejected_n")}
    out["speech_commands_unseen_total"] = tot
    t = Table(title=f"unseen Speech Commands speakers who said a digit twice or more ({len(sc)}): the first clip of each digit "
                    "they said enrolled, their other digit clips scored, and their own non-digit words with their own profile")
    for c in ("", "before", "after"):
        t.add_column(c, justify="right" if c else "left")
    n, nw = max(tot["n"], 1), max(tot["n_words"], 1)
    t.add_row(f"digits right ({tot['n']} clips; {tot['enrolled']} enrolled)", f"{_pct(tot['before_correct'] / n)}% ({tot['before_correct']})",
              f"{_pct(tot['after_correct'] / n)}% ({tot['after_correct']})")
    t.add_row("digits rejected", f"{_pct(tot['before_rejected_n'] / n)}%", f"{_pct(tot['after_rejected_n'] / n)}%")
    t.add_row(f"their own non-digit words rejected ({tot['n_words']})", f"{_pct(tot['before_words_rejected_n'] / nw)}%",
              f"{_pct(tot['after_words_rejected_n'] / nw)}%")
    con.print(t)

    members = dict(am["members"]) | fsdd_profiles(model, F, pull, weight)
    o = open_set(model, U, members, th, mv)
    out["open_set"] = o
    t = Table(title=f"open set, unseen speakers, shipped model: rejected without a profile and with each of {len(members)} profiles "
                    "(4 AudioMNIST + 6 FSDD speakers x 1 / 2 takes)")
    for c in ("clips", "n", "without %", "with: mean %", "with: worst / best %"):
        t.add_column(c, justify="right" if c != "clips" else "left")
    for kind, label in (("words", "non-digit words (Speech Commands)"), ("noise", "background noise"), ("digits", "digits (all unseen)")):
        r = o[kind]
        t.add_row(label, str(r["n"]), _pct(r["without"]), _pct(r["with_mean"]),
                  f"{_pct(r['with_min'] if kind != 'digits' else r['with_max'])} / {_pct(r['with_max'] if kind != 'digits' else r['with_min'])}")
    con.print(t)
    ac = accents(model, pull, weight, th, mv)
    if ac:
        out["accents"] = ac
        t = Table(title="strong synthetic accents (espeak-ng language voices reading the English words), shipped model: "
                        "40 digits and 50 non-digit words per voice, %")
        for c in ("voice", "digits right: before", "1 take", "2 takes", "digits rejected: before", "1 take", "2 takes",
                  "own words rejected: before", "1 take", "2 takes"):
            t.add_column(c, justify="right" if c != "voice" else "left")
        for v, r in ac.items():
            t.add_row(v, *[_pct(r[k]) for k in ("before", "after_1", "after_2", "before_rejected", "after_1_rejected", "after_2_rejected",
                                                "before_words_rejected", "after_1_words_rejected", "after_2_words_rejected")])
        con.print(t)
    con.print(f"[dim]{time.perf_counter() - t0:.0f} s (embeddings cached in {CACHE})[/dim]")
    return out


def main(argv: list[str] | None = None) -> int:
    from digitd.config import Config

    ap = argparse.ArgumentParser(prog="python -m train.enroll_eval", description=__doc__.split("\n\n")[0])
    ap.add_argument("--pull", type=float, default=Config().user.pull, help="[user] pull (default: config.py's)")
    ap.add_argument("--weight", type=float, default=Config().user.weight, help="[user] weight (default: config.py's)")
    ap.add_argument("--choose", action="store_true", help="also the pull grid, scored on FSDD training takes 10-49")
    ap.add_argument("--json", metavar="PATH", help="also write the numbers here")
    args = ap.parse_args(argv)
    out = report(args.pull, args.weight, args.choose)
    if args.json:
        import json

        Path(args.json).write_text(json.dumps(out, indent=1, default=float))
    return 0



def sc_unseen(model, U: dict[str, Any], pull: float, weight: float, threshold: float, min_voiced: float) -> dict[str, Any]:
    """Unseen Speech Commands speakers who said some digit twice or more: each enrolls the first
    clip of every digit they said, their other digit clips are scored, and their own non-digit
    words (the words folder shares the speaker ids) are the open set with their own profile."""
    dig = (U["corpus"] == "speech-commands-digits") & (U["kind"] == "digit")
    words = U["kind"] == "word"
    take_no = np.asarray([int(n.rsplit("_", 1)[1].split(".")[0]) if n.count("_") >= 2 else 0 for n in U["name"]])
    out: dict[str, Any] = {}
    for sp in sorted(set(U["speaker"][dig])):
        mine = np.flatnonzero(dig & (U["speaker"] == sp))
        mine = mine[np.lexsort((take_no[mine], U["label"][mine]))]
        first: dict[str, int] = {}
        enroll, test = [], []
        for i in mine:
            (test if U["label"][i] in first else enroll).append(i)
            first.setdefault(U["label"][i], i)
        if not test:
            continue
        member = adapt_member(model.embed, np.concatenate([U["E"][enroll], U["Et"][enroll]]), list(U["label"][enroll]) * 2,
                              pull=pull, weight=weight)
        test = np.asarray(test, dtype=np.int64)
        w = np.flatnonzero(words & (U["speaker"] == sp))
        r: dict[str, Any] = {"enrolled": len(enroll), "n": len(test), "n_words": len(w)}
        for tag, mem in (("before", model.embed), ("after", member)):
            labels, rej = full_scores(model, U, mem, test, threshold, min_voiced)
            r[tag] = float(np.mean(labels == U["label"][test]))
            r[f"{tag}_rejected"] = float(np.mean(rej))
            r[f"{tag}_correct"] = int(np.sum(labels == U["label"][test]))
            r[f"{tag}_rejected_n"] = int(np.sum(rej))
            if len(w):
                r[f"{tag}_words_rejected_n"] = int(np.sum(full_scores(model, U, mem, w, threshold, min_voiced)[1]))
        out[sp] = r
    return out


if __name__ == "__main__":
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    sys.exit(main())
