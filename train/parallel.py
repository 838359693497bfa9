"""The one place the trainer's parallel parts (features, spectrograms, embeddings, LOSO folds,
CNN seeds, out-of-fold refits) go through: joblib, with a progress bar.

By default joblib runs the tasks in local processes (loky). Inside `backend("local")` or
`backend("tcp://host:8786")` the very same calls go to a Dask distributed cluster through
joblib's dask backend. Tasks take everything they depend on (seeds included) as arguments and
never read global state, so a cluster computes exactly what the local processes compute.
The daemon never imports this module, and dask is imported only when a cluster is asked for.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import threading
import warnings
from collections import Counter
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TypeVar

from digitd.errors import DigitdError
from train.data import Record

T = TypeVar("T")
CONNECT_TIMEOUT_S = 10


@dataclass(frozen=True)
class Executor:
    """The process that ran a task: its Dask worker address (None outside a cluster) and pid."""

    address: str | None
    pid: int
    host: str


class _State(threading.local):
    in_task = False  # inside a task already: nested maps run in this process, one by one


_state = _State()
_dask_client: Any = None  # the Client while `backend` holds a cluster
_remote = False  # that cluster is another machine's: this machine's temp dir is not there
ran_on: dict[str, Counter[Executor]] = {}  # label -> tasks per executor, since `clear_ran_on`


def clear_ran_on() -> None:
    ran_on.clear()


def _where() -> Executor:
    address = None
    dist = sys.modules.get("distributed")  # loaded in any Dask worker; never imported here
    if dist is not None:
        try:
            address = dist.get_worker().address
        except ValueError:  # not inside a worker
            pass
    return Executor(address, os.getpid(), socket.gethostname())


def _task(fn: Callable[[Any, Any], T], shared: Any, item: Any) -> tuple[Executor, T]:
    """Runs on the executor: `fn(shared, item)`, plus which process ran it."""
    from joblib import parallel_config
    from threadpoolctl import threadpool_limits

    outer, _state.in_task = _state.in_task, True
    try:
        # scikit-learn's joblib calls inside a task stay in it: on a Dask worker they would
        # otherwise wait for the cluster from a busy worker thread (a deadlock on small clusters).
        # One BLAS/OpenMP thread in every process: parallel sums (HistGradientBoosting) then
        # add up in the same order wherever the task runs.
        with parallel_config(backend="sequential"), threadpool_limits(1):
            return _where(), fn(shared, item)
    finally:
        _state.in_task = outer


def map_tasks(fn: Callable[[Any, Any], T], items: Sequence[Any], *, shared: Any = None, jobs: int = 2,
              label: str = "tasks", progress: bool = True, sizes: Sequence[int] | None = None,
              on_result: Callable[[Any, T], None] | None = None) -> list[T]:
    """[fn(shared, item) for item in items] by `jobs` local processes, or on the Dask cluster
    inside `backend(...)` (there `shared` is sent to every worker once, not with each task).
    `sizes` weighs the items on the progress bar; `on_result(item, result)` runs here, in order."""
    if _state.in_task:  # a fold's CNN seeds inside a fold task: that task is the unit of work
        out = [fn(shared, it) for it in items]
        if on_result:
            for it, r in zip(items, out):
                on_result(it, r)
        return out
    from joblib import Parallel, delayed, parallel_config
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    sizes = list(sizes) if sizes is not None else [1] * len(items)
    results: list[T] = []
    seen = ran_on.setdefault(label, Counter())
    with ExitStack() as stack:
        # loky replaces a worker whose memory grew by 300 MB in a task (a fold holding its CNN
        # data does) and warns; the task is not lost, so the warning is only noise here
        stack.enter_context(warnings.catch_warnings())
        warnings.filterwarnings("ignore", message="A worker stopped while some jobs were given", category=UserWarning)
        if _dask_client is not None and shared is not None:
            stack.enter_context(parallel_config(backend="dask", scatter=[shared]))
        bar = stack.enter_context(Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=Console(stderr=True), disable=not progress, transient=True))
        task = bar.add_task(label, total=sum(sizes))
        calls = (delayed(_task)(fn, shared, it) for it in items)
        for it, size, (where, r) in zip(items, sizes, Parallel(n_jobs=jobs, return_as="generator")(calls)):
            seen[where] += 1
            results.append(r)
            bar.advance(task, size)
            if on_result:
                on_result(it, r)
    return results


def _chunk(fn: Callable[[Record], Any], chunk: Sequence[Record]) -> list[Any]:
    return [fn(r) for r in chunk]


def map_records(records: Sequence[Record], fn: Callable[[Record], Any], *, jobs: int = 2, label: str = "records",
                progress: bool = True) -> list[Any]:
    """[fn(r) for r in records], in tasks of 32 records (fn must take its seed from `r` and
    its own arguments, never from global state)."""
    if _remote:
        records = [_portable(r) for r in records]
    chunks = [records[i : i + 32] for i in range(0, len(records), 32)]
    out = map_tasks(_chunk, chunks, shared=fn, jobs=jobs, label=label, progress=progress, sizes=[len(c) for c in chunks])
    return [r for chunk_out in out for r in chunk_out]


def _portable(r: Record) -> Record:
    """A record a remote worker can load: clips this machine made in its temp dir (the espeak-ng
    caches) travel with the task; data folders must be at the same path on the workers."""
    if r.audio is None and r.path and Path(r.path).resolve().is_relative_to(Path(tempfile.gettempdir()).resolve()):
        return replace(r, audio=r.load())
    return r


@contextmanager
def backend(address: str, workers: int = 2) -> Iterator[str]:
    """Where `map_tasks` (and scikit-learn's own joblib calls) run while the block is open:
    "" = local processes; "local" = a Dask LocalCluster of `workers` single-threaded worker
    processes started here; otherwise the Dask scheduler at `address` (e.g. tcp://host:8786).
    Yields a one-line description of the place."""
    global _dask_client, _remote
    address = address.strip()
    if not address:
        yield "local processes"
        return
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise DigitdError("--dask needs dask[distributed]: pip install 'digitd[dask]' (or '.[dask]' in a checkout)") from None
    import logging

    from joblib import parallel_config

    with ExitStack() as stack:
        if address == "local":
            cluster = stack.enter_context(LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                       dashboard_address=None, silence_logs=logging.ERROR))
            client = stack.enter_context(Client(cluster))
            where = f"Dask LocalCluster ({workers} worker processes, scheduler {cluster.scheduler_address})"
        else:
            try:
                client = stack.enter_context(Client(address, timeout=CONNECT_TIMEOUT_S))
            except (OSError, ValueError, TimeoutError) as e:
                raise DigitdError(f"--dask {address}: cannot reach the Dask scheduler ({e})") from None
            n = len(client.scheduler_info().get("workers", {}))
            where = f"Dask scheduler {address} ({n} workers now)"
        stack.enter_context(parallel_config(backend="dask", wait_for_workers_timeout=60))
        _dask_client, _remote = client, address != "local"
        try:
            yield where
        finally:
            _dask_client, _remote = None, False


def summary() -> str:
    """Where the tasks of this run went, one line per label ("LOSO folds: 6 tasks on 2 workers")."""
    lines = []
    for label, seen in ran_on.items():
        places = sorted({e.address or f"pid {e.pid}@{e.host}" for e in seen})
        lines.append(f"{label}: {sum(seen.values())} tasks on {', '.join(places)}")
    return "\n".join(lines)
