"""Scoring off the event loop, with Triton-style dynamic batching of concurrent requests.

Each request is a job: gather its inputs (`ModelInputs.request`) and score every candidate post.
Jobs for the same loaded model version go through a lane: while every scoring thread is busy they
queue, and a thread that frees takes up to `max_requests` of them as one `Backend.rank` call;
with a thread free, the first job waits at most `max_delay_us` for company. So batches form under
load, when they save work, and an idle server adds no more than the delay. With batching off,
every job is dispatched alone at once: one backend call per request. Either way the event loop
only queues.
"""

from __future__ import annotations

import asyncio
import functools
import time
import weakref
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import numpy as np

from feedrank.features.online import ModelInputs


@dataclass(frozen=True)
class Job:
    inputs: ModelInputs
    user_id: int
    at: np.datetime64


@dataclass(frozen=True)
class Scored:
    scores: np.ndarray  # float64, one per candidate in `inputs.post_ids` order
    queue_ms: float  # from submission until the batch started on a worker thread
    compute_ms: float  # gathering the inputs and the backend call of the whole batch
    batch_size: int  # requests in that backend call


class Batcher:
    def __init__(
        self,
        executor: Executor,
        *,
        enabled: bool,
        max_requests: int,
        max_delay_us: int,
        workers: int,
        prepare: bool = False,
    ) -> None:
        self.executor, self.enabled = executor, enabled
        # make each request's ranking ready (`Backend.prepare`, blocking) before scoring
        self.prepare = prepare
        self.max_requests = max_requests if enabled else 1
        self.max_delay_s = max_delay_us / 1e6 if enabled else 0.0
        # batches a lane keeps running at once: one per scoring thread, so a batch never waits
        # for a thread while another could start (batching off: no limit, one call per request)
        self.slots = workers if enabled else 1 << 30
        # one lane per backend object: a reloaded version gets a fresh lane, an unloaded one's
        # lane goes with it
        self._lanes: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    async def score(self, backend: Any, job: Job) -> Scored:
        lane = self._lanes.get(backend)
        if lane is None:
            lane = self._lanes[backend] = _Lane(self, backend)
        return await lane.submit(job)


class _Lane:
    """Triton's dynamic batcher in small: requests queue while every slot is busy and leave
    together (up to `max_requests`) when one frees; with a slot free, the first request waits
    at most `max_delay_s` for company."""

    def __init__(self, batcher: Batcher, backend: Any) -> None:
        self.batcher, self.backend = batcher, backend
        self.pending: list[tuple[Job, asyncio.Future, float]] = []
        self.timer: asyncio.TimerHandle | asyncio.Handle | None = None
        self.running = 0

    def submit(self, job: Job) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.pending.append((job, future, time.perf_counter()))
        if self.running >= self.batcher.slots:
            return future  # a finishing batch takes it
        if len(self.pending) >= self.batcher.max_requests:
            self._dispatch()
        elif self.timer is None:
            delay = self.batcher.max_delay_s
            # a zero delay still gathers the requests that arrived in the same loop iteration
            self.timer = (
                loop.call_later(delay, self._dispatch)
                if delay > 0
                else loop.call_soon(self._dispatch)
            )
        return future

    def _dispatch(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        while self.pending and self.running < self.batcher.slots:
            size = self.batcher.max_requests
            batch, self.pending = self.pending[:size], self.pending[size:]
            self.running += 1
            work = asyncio.get_running_loop().run_in_executor(
                self.batcher.executor,
                _run,
                self.backend,
                [job for job, _, _ in batch],
                self.batcher.prepare,
            )
            work.add_done_callback(functools.partial(self._finished, batch=batch))

    def _finished(self, done: asyncio.Future, batch: list) -> None:
        self.running -= 1
        _deliver(done, batch)
        self._dispatch()


def _run(backend: Any, jobs: list[Job], prepare: bool) -> tuple[float, float, list[np.ndarray]]:
    started = time.perf_counter()
    requests = [job.inputs.request(job.user_id, job.at) for job in jobs]
    for request in requests if prepare else ():
        backend.prepare(request.snapshot)
    scores = backend.rank(requests)
    return started, time.perf_counter(), scores


def _deliver(done: asyncio.Future, batch: list[tuple[Job, asyncio.Future, float]]) -> None:
    error = done.exception()
    if error is not None:
        for _, future, _ in batch:
            if not future.done():
                future.set_exception(error)
        return
    started, finished, parts = done.result()
    for (_, future, submitted), scores in zip(batch, parts, strict=True):
        if not future.done():
            future.set_result(
                Scored(scores, (started - submitted) * 1e3, (finished - started) * 1e3, len(batch))
            )
