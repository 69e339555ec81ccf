"""Request deadlines of the async serving methods: each request runs on a worker thread and
is answered within the time budget (`serving.timeout_ms`), or by the caller's fallback.

Reads and writes nothing: it owns the worker threads (`serving.threads`) and a thread-local
holding the deadline of the request a worker is answering, so that work on that thread
(`tailor.serving.offer_budget`) can check whether its answer will still be shown.

A request the wait gave up on keeps running in the background; its answer is unused. The
worker and the waiting side settle under one lock which of them came first: an answer
finished in time is used even if the wait ran out a moment later, and work that finishes
after the wait gave up runs the undo actions it registered (e.g. giving back a reserved
incentive budget whose offer is never shown).
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

Answer = TypeVar("Answer")


class Deadline:
    """The time budget of one request, shared by its worker thread and the waiting side."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.expired = False
        self.answers: list[Any] | None = None
        self.undo: list[Callable[[], None]] = []

    def expire(self) -> list[Any] | None:
        """Called when the wait runs out: the answers if they are already there, else None
        (and from now on the worker's answers are unused)."""
        with self.lock:
            if self.answers is None:
                self.expired = True
            return self.answers

    def keep(self, undo: Callable[[], None]) -> bool:
        """Registers `undo` to run if the answer comes too late.

        Returns:
            True if registered; False if the request already ran out of time (then the
            caller undoes its work itself).
        """
        with self.lock:
            if self.expired:
                return False
            self.undo.append(undo)
            return True

    def settle(self, answers: list[Any]) -> None:
        """Hands the worker's answers over, or, past the deadline, runs the undo actions."""
        with self.lock:
            if not self.expired:
                self.answers = answers
                return
        for action in self.undo:
            action()


class RequestDeadlines:
    """The worker threads that answer async requests within the time budget.

    Args:
        threads: how many worker threads (`serving.threads`).
        timeout_ms: the time budget of one request (`serving.timeout_ms`).
    """

    def __init__(self, threads: int, timeout_ms: float) -> None:
        self.timeout_seconds = timeout_ms / 1000
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="tailor-serving")
        self._request = threading.local()  # the worker thread's current `Deadline`, if any

    def current(self) -> Deadline | None:
        """The deadline of the request this thread is answering (None off a worker)."""
        return getattr(self._request, "deadline", None)

    async def run(self, work: Callable[[], list[Answer]], timed_out: Callable[[], Answer],
                  failed: Callable[[BaseException], Answer]) -> Answer:
        """The first answer of `work()`, run on a worker thread within the time budget.

        Args:
            work: answers one request (a list of one); must not raise.
            timed_out: the answer when the time budget runs out first.
            failed: the answer when the work could not run (e.g. the threads were shut down).

        Returns:
            The worker's answer, else `timed_out()` or `failed(error)`.
        """
        deadline = Deadline()
        try:
            pending = asyncio.get_running_loop().run_in_executor(
                self._executor, self._work_against, deadline, work)
            return (await asyncio.wait_for(pending, self.timeout_seconds))[0]
        except TimeoutError:
            finished = deadline.expire()
            return finished[0] if finished else timed_out()
        except Exception as error:  # e.g. the worker threads were shut down by close()
            return failed(error)

    def _work_against(self, deadline: Deadline, work: Callable[[], list[Answer]]
                      ) -> list[Answer]:
        """`work()` on a worker thread, with `deadline` as the thread's current one; then
        settles the answers with the deadline."""
        self._request.deadline = deadline
        try:
            answers = work()
        finally:
            self._request.deadline = None
        deadline.settle(answers)
        return answers

    def close(self) -> None:
        """Stops the worker threads; queued requests are cancelled."""
        self._executor.shutdown(wait=False, cancel_futures=True)
