"""Re-learning the suspicion in the background while an annotator reviews.

The Review page re-learns every ``RELEARN_EVERY`` decisions (``relearn_if_due``). Run in the
decision's callback, that held the next card back for as long as learning took (1.5 s at 100,000
pool pairs, 10 s at a million); here it runs in a daemon thread, one at a time per run and
process (every session of the app shares them), while the annotator goes on. The scores are
written in one transaction, so the queue changes from one suspicion to the next between two
cards (the page's queue cache sees the new scoring and reads the queue again); decisions recorded
meanwhile count towards the next learning (its scores are dated when it read the decisions).
While the scores are written, a decision waits for them (about 2 s at a million pool pairs).
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field

from core.errors import WorkbenchError
from core.false_negatives.learning import RELEARN_EVERY, LearnReport, relearn_if_due
from core.store import Store


@dataclass
class RelearnJob:
    """One background re-learning of a run.

    Attributes:
        workspace, run_id: what it re-learns; number: the process's count of re-learnings.
        report: the learning's report once done (None: not due after all, or it failed).
        error: the failure's sentence, if it failed.
    """

    workspace: str
    run_id: int
    number: int
    report: LearnReport | None = None
    error: str | None = None
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


_jobs: dict[tuple[str, int], RelearnJob] = {}
_lock = threading.Lock()
_numbers = itertools.count(1)


def _key(store: Store, run_id: int) -> tuple[str, int]:
    return str(store.path.resolve()), run_id


def relearn_in_background(store: Store, run_id: int,
                          every: int = RELEARN_EVERY) -> RelearnJob | None:
    """Start ``relearn_if_due`` for the run in a daemon thread when ``every`` decisions or more
    came since its last scoring and no re-learning of the run is running; returns the job
    started, else None."""
    run = store.get_run(run_id)
    if every < 1 or store.decisions_since_scored(run.run_id, run.dataset_id) < every:
        return None
    key = _key(store, run.run_id)
    with _lock:
        job = _jobs.get(key)
        if job is not None and job.running:
            return None
        job = RelearnJob(*key, next(_numbers))
        job._thread = threading.Thread(target=_learn, args=(job, store, every), daemon=True,
                                       name=f"relearn-run-{run.run_id}")
        _jobs[key] = job
        job._thread.start()
    return job


def _learn(job: RelearnJob, store: Store, every: int) -> None:
    try:
        job.report = relearn_if_due(store, job.run_id, every)
    except WorkbenchError as err:
        job.error = str(err)
    except Exception as err:  # noqa: BLE001  (a thread's failure must reach the page)
        job.error = f"re-learning run {job.run_id} failed ({type(err).__name__}: {err})"


def running(store: Store, run_id: int) -> bool:
    """Whether a re-learning of the run is running in this process."""
    job = _jobs.get(_key(store, run_id))
    return job is not None and job.running


def last_job(store: Store, run_id: int) -> RelearnJob | None:
    """The run's last background re-learning in this process (running or finished), if any."""
    return _jobs.get(_key(store, run_id))


def wait(store: Store | None = None, run_id: int | None = None,
         timeout: float | None = None) -> None:
    """Wait for the background re-learnings of the workspace's run (of all its runs without
    ``run_id``; of every workspace without ``store``) to finish: before learning or forgetting
    from the page, which must not race them, before closing a workspace, and in tests."""
    path = None if store is None else str(store.path.resolve())
    with _lock:
        jobs = [j for (p, r), j in _jobs.items()
                if (path is None or p == path) and (run_id is None or r == run_id)]
    for job in jobs:
        if job._thread is not None:
            job._thread.join(timeout)
