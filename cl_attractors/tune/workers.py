"""The trial loop of one ``tune`` process: trials start only while the study has room, so the
workers sharing a study (threads, processes, machines) stop at exactly ``n_trials``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import optuna
from optuna.trial import FrozenTrial, TrialState

from cl_attractors.tune.storage import fail_stale_trials

COUNTED = (TrialState.COMPLETE, TrialState.PRUNED)
Objective = Callable[[optuna.Trial], float]
AfterTrial = Callable[[optuna.Study, FrozenTrial], None]


def counted(study: optuna.Study) -> int:
    """Trials that count towards ``n_trials``: COMPLETE and PRUNED (FAIL ones are re-done)."""
    return len(study.get_trials(deepcopy=False, states=COUNTED))


class Workers:
    """Runs trials of ``study`` until it holds ``n_trials`` COMPLETE + PRUNED ones.

    A trial starts only while COMPLETE + PRUNED + RUNNING trials (of every worker) are fewer than
    ``n_trials``, so workers sharing a study stop at exactly ``n_trials`` instead of each
    finishing one more. When the others' running trials could fill it, a worker polls every
    ``poll_s`` seconds until they finish, or until a dead worker's trial turns stale: it is then
    failed and re-queued, and this worker runs the copy. (Two workers checking within the same
    few milliseconds can still both start the last trial.)
    """

    def __init__(
        self, study: optuna.Study, storage: optuna.storages.BaseStorage, n_trials: int, poll_s: float
    ) -> None:
        self.study, self.storage, self.n_trials, self.poll_s = study, storage, n_trials, poll_s

    def run(self, objective: Objective, budget: int, n_jobs: int, after_trial: AfterTrial) -> None:
        """At most ``budget`` trials in ``n_jobs`` threads (a FAIL trial uses one: re-run to top
        up); ``after_trial`` after each."""
        lock, left = threading.Lock(), [budget]
        n_jobs = max(1, min(n_jobs, budget))  # a thread per trial at most: bounded before allocating

        def take() -> bool:
            with lock:
                left[0] -= 1
                return left[0] >= 0

        def work() -> None:
            while take() and self.wait_for_room():
                self.study.optimize(
                    objective, 1, catch=(Exception,), callbacks=[after_trial], gc_after_trial=True
                )

        if n_jobs == 1:
            return work()
        with ThreadPoolExecutor(n_jobs) as pool:
            for job in [pool.submit(work) for _ in range(n_jobs)]:
                job.result()

    def wait_for_room(self) -> bool:
        """True once a trial may start; False once the study is full. Fails stale trials first."""
        said = False
        while True:
            fail_stale_trials(self.study, self.storage)
            states = [
                t.state for t in self.study.get_trials(deepcopy=False, states=(*COUNTED, TrialState.RUNNING))
            ]
            if len(states) < self.n_trials:
                return True
            if TrialState.RUNNING not in states:
                return False
            if not said:
                print(f"waiting: {states.count(TrialState.RUNNING)} running trial(s) may complete the study")
                said = True
            time.sleep(self.poll_s)
