"""The trainer's parallel parts on a Dask cluster (joblib's dask backend): a LocalCluster of 2
worker processes runs them (the tasks say which process they ran in), and the results equal
the local run for the same seed, bit for bit."""

import os

import numpy as np
import pytest

from train import parallel

if not os.environ.get("CI"):
    pytest.importorskip("distributed", reason="the dask extra (pip install '.[dask]')")


@pytest.fixture(scope="module")
def cluster():
    """Two single-threaded worker processes, as `--dask local` starts them."""
    import logging

    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.ERROR) as lc, Client(lc) as client:
        client.wait_for_workers(2)
        yield lc.scheduler_address, client.run(os.getpid)  # {worker address: pid}


def _work(recs, with_cnn: bool):
    """Feature extraction (augmented copies), LOSO folds, out-of-fold refits and two CNN seeds."""
    from train.augment import AugmentSpec
    from train.trainer import Recipe, _clean_mask, _corrupt_mask, extract_all, fit, loso, oof_confidence, stack

    spec = AugmentSpec(copies=1, kinds=["noise", "gain"])
    recipe = Recipe(classifier="lr", grid={"clf__C": [0.1]}, augment=spec, seed=5, jobs=2)
    feats = extract_all(recs, jobs=2, spec=spec, seed=5, progress=False)
    out = {"feats": feats, "loso": loso(feats, recs, recipe)}
    train = [r for r in recs if r.split == "train"]
    tf = [f for f, r in zip(feats, recs) if r.split == "train"]
    X, y, g = stack(tf, train, augmented=True)
    res = fit(X, y, g, recipe, clean_mask=_clean_mask(tf), corrupt_mask=_corrupt_mask(tf))
    out["oof"] = oof_confidence(res, X, y, X[:40] * 0.01, None, _clean_mask(tf), _corrupt_mask(tf), jobs=2)
    if with_cnn:
        from train.cnn import fit_member, spectrograms_all

        few = train[::8]
        specs = spectrograms_all(few, spec, 1, seed=5, jobs=2)
        member = fit_member(specs, [r.label for r in few], [str(d) for d in range(10)], epochs=2, gain=8.0, base=2.0,
                            seed=5, nets=2, jobs=2)
        out["cnn"] = member.nets
    return out


def _arrays(x):
    """Every array in a nested result, in order (to compare two results exactly)."""
    if isinstance(x, np.ndarray):
        yield x
    elif isinstance(x, dict):
        for k in sorted(x):
            yield from _arrays(x[k])
    elif isinstance(x, (list, tuple)) or hasattr(x, "vectors"):
        for v in (x.vectors if hasattr(x, "vectors") else x):
            yield from _arrays(v)


def test_cluster_workers_run_the_parallel_parts_and_match_the_local_run(cluster, small_subset):
    from train.data import load_folder

    address, worker_pids = cluster
    recs, _ = load_folder(small_subset)
    with_cnn = True
    try:
        import torch  # noqa: F401
    except ImportError:
        with_cnn = False

    parallel.clear_ran_on()
    local = _work(recs, with_cnn)
    local_places = {e for c in parallel.ran_on.values() for e in c}
    assert all(e.address is None and e.pid not in worker_pids.values() for e in local_places)

    parallel.clear_ran_on()
    with parallel.backend(address) as where:
        assert "Dask scheduler" in where
        remote = _work(recs, with_cnn)
    labels = {"features", "LOSO folds", "out-of-fold confidences"} | ({"CNN spectrograms", "CNN nets"} if with_cnn else set())
    assert labels <= set(parallel.ran_on)
    for label, seen in parallel.ran_on.items():
        # every task reports a worker of this cluster (address and pid), none ran in this process
        assert {e.address for e in seen} <= set(worker_pids), label
        assert {e.pid for e in seen} <= set(worker_pids.values()) and os.getpid() not in {e.pid for e in seen}, label
    assert len({e.pid for c in parallel.ran_on.values() for e in c}) == 2  # both workers had work

    assert remote["loso"] == local["loso"]  # per-speaker accuracies and confidence quantiles, exactly
    assert [f.corrupted for f in remote["feats"]] == [f.corrupted for f in local["feats"]]
    a, b = list(_arrays(local)), list(_arrays(remote))
    assert len(a) == len(b) > 2 * len(recs)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_unreachable_scheduler_is_one_line(monkeypatch, capsys, small_subset):
    from digitd.cli import main

    monkeypatch.setattr(parallel, "CONNECT_TIMEOUT_S", 1)
    rc = main(["eval", "--loso", "--data", str(small_subset), "--dask", "tcp://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("digitd: error: --dask tcp://127.0.0.1:9: cannot reach the Dask scheduler")


def test_without_the_dask_extra_the_flag_says_what_to_install(monkeypatch):
    import sys

    from digitd.errors import DigitdError

    monkeypatch.setitem(sys.modules, "dask.distributed", None)  # as if the extra were not installed
    with pytest.raises(DigitdError, match=r"pip install 'digitd\[dask\]'"):
        with parallel.backend("local"):
            pass
    with parallel.backend("") as where:  # the default needs nothing of it
        assert where == "local processes"


def test_clips_made_in_the_temp_dir_travel_to_a_remote_cluster(tmp_path, fsdd):
    """espeak-ng caches live in this machine's temp dir: their audio goes with the task; the data
    folders (same path on every worker) are read by the workers."""
    from digitd.audio import load_wav, write_wav
    from train.data import Record

    made = tmp_path / "espeak_3.wav"
    write_wav(made, load_wav(fsdd / "3_theo_0.wav"))
    here = parallel._portable(Record("3", "espeak", 0, "synth", str(made)))
    assert here.audio is not None and here.name == "espeak_3.wav"
    data = Record("3", "theo", 0, "test", str(fsdd / "3_theo_0.wav"))
    assert parallel._portable(data) is data
