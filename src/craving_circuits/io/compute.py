"""Where the parallel work runs: local worker processes, or a Dask cluster.

Every parallel stage of the book goes through :class:`joblib.Parallel`: the
per-run stages (:func:`craving_circuits.io.runs.map_runs`: first level, CBF
maps, cue GLMs), the simulators' runs, the Monte Carlo calibration and the
chunks of each permutation null
(:func:`craving_circuits.stats.permutation.cluster_permutation_test`). An
engine chooses joblib's backend for all of them at once:

``"local"``
    joblib's own worker processes (loky) on this machine, ``n_jobs`` of them
    per stage; nothing else to install or start.
``"dask"``
    joblib's ``dask`` backend on a :class:`distributed.Client`: a
    :class:`distributed.LocalCluster` of ``n_workers`` single-threaded worker
    processes when no address is given, or any running scheduler
    (``scheduler_address="tcp://host:8786"``), for example a SLURM cluster
    started with ``dask-jobqueue``. Every stage then uses all the cluster's
    workers, whatever its ``n_jobs``. The workers must see the same paths as
    this process (a shared file system), since the per-run stages read the
    study's files and write their cache themselves.

Results do not depend on the engine or on the number of workers: each task
is a pure function of its inputs and its own seed (runs, replicates and the
permutation null's fixed chunks are seeded before they are dispatched), and
results are gathered in task order.

Data conventions
----------------
:func:`start` returns an :class:`Engine`; it is active (joblib's default
backend in this thread) until :meth:`Engine.close`, and usable as a context
manager.
"""

from __future__ import annotations

import atexit
from dataclasses import dataclass, field

from distributed import Client, LocalCluster
from joblib import parallel_config

__all__ = ["ENGINES", "Engine", "start"]

#: The engines :func:`start` knows.
ENGINES = ("local", "dask")


@dataclass
class Engine:
    """An active engine.

    Attributes
    ----------
    name : {"local", "dask"}
    n_workers : int
        Workers a stage uses (the cluster's worker threads for Dask).
    client : distributed.Client or None
    cluster : distributed.LocalCluster or None
        Only when this engine started it (closed with the engine).
    """

    name: str
    n_workers: int
    client: Client | None = None
    cluster: LocalCluster | None = None
    _config: parallel_config | None = field(default=None, repr=False)

    @property
    def dashboard(self) -> str | None:
        """The Dask dashboard's address, if any."""
        return None if self.client is None else self.client.dashboard_link

    def describe(self) -> str:
        """One line for a notebook: which engine, how many workers."""
        if self.name == "local":
            return f"local engine: {self.n_workers} worker process(es) per stage"
        where = (
            "a local Dask cluster"
            if self.cluster is not None
            else f"the Dask scheduler {self.client.scheduler.address}"
        )
        return f"Dask engine: {self.n_workers} worker(s) on {where}"

    def close(self) -> None:
        """Restore joblib's previous backend and close what this engine started."""
        if self._config is not None:
            self._config.unregister()
            self._config = None
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def start(engine: str = "local", scheduler_address: str | None = None, n_workers: int = 1) -> Engine:
    """Activate an engine for every parallel stage that follows.

    Parameters
    ----------
    engine : {"local", "dask"}
    scheduler_address : str, optional
        A running Dask scheduler (``engine="dask"`` only); without it a
        LocalCluster of ``n_workers`` processes is started.
    n_workers : int
        Local worker processes (``"local"``: each stage's ``n_jobs`` stays as
        given; ``"dask"`` without an address: the LocalCluster's size).

    Returns
    -------
    Engine

    Raises
    ------
    ValueError
        For an unknown engine, an address without ``engine="dask"``, or fewer
        than one worker.
    """
    if engine not in ENGINES:
        raise ValueError(f"Unknown engine {engine!r}; choose one of {list(ENGINES)}.")
    if int(n_workers) != n_workers or n_workers < 1:
        raise ValueError(f"n_workers must be a positive integer, got {n_workers!r}.")
    if engine == "local":
        if scheduler_address:
            raise ValueError(
                f"scheduler_address={scheduler_address!r} is given with engine='local'; "
                "use engine='dask' to run on that scheduler."
            )
        return Engine("local", int(n_workers))
    cluster = None
    if scheduler_address:
        client = Client(scheduler_address)
    else:
        cluster = LocalCluster(n_workers=int(n_workers), threads_per_worker=1, processes=True, dashboard_address=":0")
        client = Client(cluster)
    n = sum(client.nthreads().values())
    result = Engine("dask", n, client=client, cluster=cluster, _config=parallel_config(backend="dask"))
    atexit.register(result.close)
    return result
