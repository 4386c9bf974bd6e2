"""Child processes tied to this process's life, not to the thread that happened to start them.

``PR_SET_PDEATHSIG`` (the sandbox jail's ``--die-with-parent``, a managed model server's parent-death
signal) fires when the *thread* that started the child exits, not the process. A child started from a
short-lived thread (a pool warming its copies side by side, an episode thread, ``asyncio.to_thread``,
a notebook's worker thread) was killed when that thread ended, and whatever it was serving failed with
it. ``start_lasting`` runs the start on one daemon thread per process: it ends with the process, and the
children with it. Standard library only (the sandbox's worker side imports nothing else).
"""

from __future__ import annotations

import concurrent.futures
import os
import queue
import threading
from typing import Callable, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_spawner: tuple[int, queue.SimpleQueue] | None = None  # (pid, jobs) of this process's spawner thread


def start_lasting(start: Callable[[], T]) -> T:
    """``start()`` (a ``subprocess.Popen``) run on the process's spawner thread; its result or its exception.

    After a fork the child process starts a spawner of its own.
    """
    global _spawner
    with _lock:
        if _spawner is None or _spawner[0] != os.getpid():
            jobs: queue.SimpleQueue = queue.SimpleQueue()
            threading.Thread(target=_serve, args=(jobs,), name="lasting-spawner", daemon=True).start()
            _spawner = (os.getpid(), jobs)
        jobs = _spawner[1]
    done: concurrent.futures.Future = concurrent.futures.Future()
    jobs.put((start, done))
    return done.result()


def _serve(jobs: queue.SimpleQueue) -> None:
    while True:
        start, done = jobs.get()
        try:
            done.set_result(start())
        except BaseException as exc:  # noqa: BLE001 - the caller's (a missing binary, a bad argument)
            done.set_exception(exc)


__all__ = ["start_lasting"]
