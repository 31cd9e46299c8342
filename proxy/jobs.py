"""Asynchronous imports (`POST /images` with `Prefer: respond-async`): background jobs.

A job runs as an asyncio task in the worker process that accepted it, and only there: jobs
are not persisted work. If that process stops (restart, crash), its unfinished jobs are
lost; `GET /jobs/{job}` then reports them failed ("job-lost", 503) and the client submits
again.

Job *state* is shared beyond the process: besides its own memory, each job has one small
JSON record, written when the job starts and when it ends, so whichever worker or node the
client reaches answers `GET /jobs/{job}` alike. With the local backend the record is a file
`{storage.path}/jobs/{job}.json` (replaced atomically), shared by the worker processes of the
node, and a pending record whose process is gone reads as lost. With `storage.backend: s3` it
is the object `{prefix}jobs/{job}` in the bucket, shared by every node: no sticky routing. A
process cannot see whether another node's process still runs, so it refreshes the records of
its pending jobs every `HEARTBEAT` seconds, and a pending record older than `STALE` reads as
lost.

Limits: at most `MAX_JOBS` jobs per process are pending or remembered (beyond: 503); a
finished job is forgotten `TTL` seconds after it finished (then 404). Jobs take part in the
render pool's limits like any request, with two differences: at most `concurrency` jobs of one
process run at once (the rest wait, pending, in order), and a job that meets a full render
queue waits and tries again, for up to `PATIENCE` seconds, before failing with the 503
problem: the client asked not to wait, so a burst of interactive traffic should delay its
job, not fail it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import secrets
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from .errors import Overloaded, ProxyError

if TYPE_CHECKING:
    from .sources import Store

log = logging.getLogger("proxy.jobs")

JOB_RE = re.compile(r"^[0-9a-f]{32}$")
MAX_JOBS = 10_000
TTL = 3600.0
PATIENCE = 300.0
HEARTBEAT = 10.0  # seconds between refreshes of a pending job's record in the bucket
STALE = 3  # heartbeats missed before a pending record in the bucket reads as lost

Work = Callable[[], Awaitable[dict[str, object]]]
State = dict[str, object]


class JobLost(ProxyError):
    """The process running a job stopped before the job finished."""

    status, title, slug = 503, "Service Unavailable", "job-lost"
    log = False


class Jobs:
    """Background jobs of this process, with their state mirrored to a board (FileBoard under
    `root` unless another is given) that other processes read."""

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        concurrency: int,
        max_jobs: int = MAX_JOBS,
        ttl: float = TTL,
        patience: float = PATIENCE,
        board: Board | None = None,
    ) -> None:
        self.board: Board = board or FileBoard(root, ttl)
        self.max_jobs = max_jobs
        self.ttl = ttl
        self.patience = patience
        self._slots = asyncio.Semaphore(max(1, concurrency))
        self._states: dict[str, State] = {}
        self._expiry: deque[tuple[float, str]] = deque()  # (monotonic deadline, job), in order
        self._tasks: set[asyncio.Task] = set()

    def __len__(self) -> int:
        return len(self._states)

    async def open(self) -> None:
        await self.board.open()

    async def close(self) -> None:
        """Cancel the jobs still running: they are recorded as lost."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.board.close()

    async def submit(self, work: Work) -> str:
        """Start `work` (which returns the image JSON) in the background; return the job id."""
        await self._prune()
        if len(self._states) >= self.max_jobs:
            raise Overloaded(
                f"{len(self._states)} jobs are pending or finished within the hour; "
                "try again later",
                retry_after=60,
            )
        job = secrets.token_hex(16)
        state: State = {"job": job, "status": "pending", "image": None, "error": None}
        self._states[job] = state  # counted before the await, so concurrent submits see it
        try:
            await self.board.write(job, state, None)
        except BaseException:
            self._states.pop(job, None)
            raise
        task = asyncio.create_task(self._run(job, work), name=f"job-{job}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    async def get(self, job: str) -> State | None:
        """The public state of a job (`job`, `status`, `image`, `error`), or None if unknown."""
        if not JOB_RE.match(job):
            return None
        await self._prune()
        state = self._states.get(job)
        if state is not None:
            return dict(state)
        return await self.board.read(job)

    # --- running

    async def _run(self, job: str, work: Work) -> None:
        try:
            async with self._slots:
                image = await self._patiently(work)
        except asyncio.CancelledError:
            # Shutting down: record the loss where the other workers will look, right now.
            lost = JobLost("the server stopped before the job finished; submit it again")
            await self._record(job, self._finished(job, _failed(job, lost.problem())))
            raise
        except ProxyError as error:
            state = _failed(job, error.problem())
        except Exception:
            log.exception("job %s failed unexpectedly", job)
            unexpected = ProxyError("an unexpected error occurred; it has been logged")
            state = _failed(job, unexpected.problem())
        else:
            state = {"job": job, "status": "done", "image": image, "error": None}
        await self._record(job, self._finished(job, state))

    async def _record(self, job: str, state: State) -> None:
        try:
            await self.board.write(job, state, time.time())
        except Exception as exc:
            # This process still answers from memory; the others see the job pending.
            log.warning("job %s: cannot record its state for other processes: %r", job, exc)

    async def _patiently(self, work: Work) -> dict[str, object]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.patience
        delay = 0.05
        while True:
            try:
                return await work()
            except Overloaded:
                if loop.time() + delay > deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    def _finished(self, job: str, state: State) -> State:
        """Remember the outcome in memory; its hour starts now."""
        self._states[job] = state
        self._expiry.append((time.monotonic() + self.ttl, job))
        return state

    async def _prune(self) -> None:
        now = time.monotonic()
        gone = []
        while self._expiry and self._expiry[0][0] <= now:
            _deadline, job = self._expiry.popleft()
            self._states.pop(job, None)
            gone.append(job)
        if gone:
            await self.board.forget(gone)


class Board(Protocol):
    """Where job records are shared: write and read one, forget finished ones."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def write(self, job: str, state: State, finished: float | None) -> None: ...

    async def read(self, job: str) -> State | None: ...

    async def forget(self, jobs: list[str]) -> None: ...


class FileBoard:
    """Records as files `{root}/{job}.json`, for the worker processes of one node."""

    def __init__(self, root: str | os.PathLike, ttl: float) -> None:
        self.root = Path(root)
        self.ttl = ttl

    async def open(self) -> None:
        await asyncio.to_thread(self._sweep)

    async def close(self) -> None:
        pass

    async def write(self, job: str, state: State, finished: float | None) -> None:
        await asyncio.to_thread(self._write, job, state, finished)

    async def read(self, job: str) -> State | None:
        return await asyncio.to_thread(self._read, job)

    async def forget(self, jobs: list[str]) -> None:
        await asyncio.to_thread(_unlink_all, [self._path(job) for job in jobs])

    # --- files, in threads

    def _path(self, job: str) -> Path:
        return self.root / f"{job}.json"

    def _write(self, job: str, state: State, finished: float | None) -> None:
        record = {**state, "pid": os.getpid(), "finished": finished}
        tmp = self.root / f".{os.getpid()}-{uuid.uuid4().hex}.tmp"
        try:
            tmp.write_text(json.dumps(record))
            os.replace(tmp, self._path(job))
        finally:
            tmp.unlink(missing_ok=True)

    def _read(self, job: str) -> State | None:
        try:
            record = json.loads(self._path(job).read_text())
        except (FileNotFoundError, ValueError):
            return None
        if not isinstance(record, dict):
            return None
        finished = record.pop("finished", None)
        pid = record.pop("pid", None)
        if finished is not None and finished + self.ttl <= time.time():
            return None
        if record.get("status") == "pending" and not _running_elsewhere(pid):
            lost = JobLost("the worker process running this job stopped; submit it again")
            return _failed(job, lost.problem())
        return record

    def _sweep(self) -> None:
        """At start: drop the files of jobs whose hour is over, and of jobs lost unfinished."""
        self.root.mkdir(parents=True, exist_ok=True)
        cutoff = time.time() - self.ttl
        for entry in os.scandir(self.root):
            try:
                if entry.stat().st_mtime >= cutoff:
                    continue
                if entry.name.endswith(".json") and _pending_elsewhere(Path(entry.path)):
                    continue  # a sibling worker's job, pending for over an hour
                os.unlink(entry.path)
            except FileNotFoundError:
                continue


class BucketBoard:
    """Records as objects `{prefix}jobs/{job}` of the store's bucket, for every node.

    Finished records are not deleted here (reads ignore them once their hour is over): a
    bucket lifecycle rule on `{prefix}jobs/` removes them (see the README).
    """

    def __init__(self, store: Store, ttl: float, heartbeat: float = HEARTBEAT) -> None:
        self.store = store
        self.ttl = ttl
        self.heartbeat = heartbeat
        self._pending: dict[str, State] = {}
        self._beating: asyncio.Task | None = None

    async def open(self) -> None:
        self._beating = asyncio.create_task(self._beat(), name="jobs-heartbeat")

    async def close(self) -> None:
        if self._beating is not None:
            self._beating.cancel()
            await asyncio.gather(self._beating, return_exceptions=True)

    async def write(self, job: str, state: State, finished: float | None) -> None:
        if state["status"] == "pending":
            self._pending[job] = state
        else:
            self._pending.pop(job, None)
        record = {**state, "finished": finished, "updated": time.time()}
        await self.store.put_blob(f"jobs/{job}", json.dumps(record).encode(), {})

    async def read(self, job: str) -> State | None:
        try:
            blob = await self.store.get_blob(f"jobs/{job}")
            record = json.loads(blob.data) if blob is not None else None
        except ValueError:
            return None
        if not isinstance(record, dict):
            return None
        finished = record.pop("finished", None)
        updated = record.pop("updated", 0)
        if finished is not None and finished + self.ttl <= time.time():
            return None
        deadline = updated + STALE * self.heartbeat if isinstance(updated, int | float) else 0
        stale = deadline < time.time()
        if record.get("status") == "pending" and stale:
            lost = JobLost("the node running this job stopped; submit it again")
            return _failed(job, lost.problem())
        return record

    async def forget(self, jobs: list[str]) -> None:
        pass

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            for job, state in list(self._pending.items()):
                try:
                    await self.write(job, state, None)
                except Exception as exc:  # the next beat tries again
                    log.warning("job %s: heartbeat not recorded: %r", job, exc)


def _failed(job: str, problem: dict[str, object]) -> State:
    return {"job": job, "status": "failed", "image": None, "error": problem}


def _pending_elsewhere(path: Path) -> bool:
    try:
        record = json.loads(path.read_text())
    except ValueError:
        return False
    if not isinstance(record, dict):
        return False
    return record.get("finished") is None and _running_elsewhere(record.get("pid"))


def _running_elsewhere(pid: object) -> bool:
    """Whether `pid` is another process that still runs (a job's pending file is then live)."""
    if not isinstance(pid, int) or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _unlink_all(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
