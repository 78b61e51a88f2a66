"""Where training's fits run: a local process pool (the default), or a Dask cluster.

One executor serves the whole run: every asset's backtest folds and final fit are submitted to
it, and the results come back to this process, the one that holds the model folder and writes
the pairs. DASK_SCHEDULER_ADDRESS (Dask's own variable; `train.py --cluster ADDRESS` sets it)
sends them to that cluster's workers instead, through Dask's concurrent.futures interface, so
the backtest code is the same for both. The workers need only the training requirements: this
project's code (artifact/ and training/) is shipped to them as a zip when the run connects.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import logging
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from pathlib import Path

from training.errors import TrainingError, short
from training.workers import process_count, worker_pool

log = logging.getLogger(__name__)

CLUSTER_VARIABLE = "DASK_SCHEDULER_ADDRESS"
PROJECT_DIR = Path(__file__).resolve().parents[1]
SHIPPED_PACKAGES = ("artifact", "training")  # what a fit on a worker imports from this project


def cluster_address(option: str | None = None) -> str | None:
    """The Dask scheduler to train on: the --cluster option, else DASK_SCHEDULER_ADDRESS; None: local."""
    return option or os.environ.get(CLUSTER_VARIABLE) or None


@contextmanager
def training_executor(
    jobs: int | None, address: str | None, initializer: Callable[[], None], fits: int
) -> Iterator[Executor]:
    """The executor of a whole run of `fits` fits: `jobs` local processes (default one per core, at
    most one per fit and core), or the cluster."""
    if address:
        with dask_executor(address) as executor:
            yield executor
        return
    # Prophet (and matplotlib, which it imports) takes seconds to import; this process needs it
    # anyway to pickle the models, so import it once, before the fork, for every worker.
    importlib.import_module("prophet")
    pool = worker_pool(process_count(jobs, fits), initializer)
    try:
        # Fork every worker now, from this thread, before any other starts: a fork from a thread
        # that later ends would tie the workers' death signal to it (see worker_pool).
        pool.submit(os.getpid).result()
        yield pool
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)  # an interrupted run does not work off its queue
        raise
    pool.shutdown()


@contextmanager
def dask_executor(address: str) -> Iterator[Executor]:
    """A concurrent.futures executor on the Dask cluster whose scheduler is at `address`."""
    try:
        import dask.config
        from distributed import Client
    except ImportError as error:  # pragma: no cover - the training requirements install it
        raise TrainingError(
            f"{CLUSTER_VARIABLE} is set but Dask is not installed: pip install -r requirements-train.txt"
        ) from error
    # Dask's own connect timeout (30 s; DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT): a wrong
    # address fails the run after it.
    timeout = dask.config.get("distributed.comm.timeouts.connect")
    try:
        client = Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as error:
        raise TrainingError(f"cannot reach the Dask scheduler at {address}: {short(error)}") from error
    try:
        workers = client.scheduler_info().get("workers", {})
        log.info(
            "training on the Dask cluster at %s: %d worker(s), %d thread(s)",
            address, len(workers), sum(w.get("nthreads", 0) for w in workers.values()),
        )  # fmt: skip
        with tempfile.TemporaryDirectory(prefix="train-code-") as folder:
            client.upload_file(str(code_zip(Path(folder))), load=True)
        yield client.get_executor(pure=False)
    finally:
        client.close()


def code_zip(folder: Path) -> Path:
    """artifact/ and training/ as one zip in `folder`, named by its content: what the workers import.

    A worker that already imported an older version keeps it: restart the workers after an upgrade.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for package in SHIPPED_PACKAGES:
            for source in sorted((PROJECT_DIR / package).rglob("*.py")):
                archive.write(source, source.relative_to(PROJECT_DIR).as_posix())
    data = buffer.getvalue()
    path = folder / f"crypto_predict_{hashlib.sha256(data).hexdigest()[:16]}.zip"
    path.write_bytes(data)
    return path
