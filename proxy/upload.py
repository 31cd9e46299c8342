"""`progimage upload PATH…`: store files and directories on a running service (SPEC §14).

Each file is hashed here first: its id is the SHA-256 prefix, so `HEAD /images/{id}` tells
whether the service has it already. That makes a second run after an interruption cheap and
exact: what arrived is skipped, what was cut off is sent again, nothing is stored twice.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import fnmatch
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from .client import DEFAULT_SERVER, AsyncClient, ProgImageError, file_id

TOKEN_VARIABLE = "PROGIMAGE_TOKEN"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="files and directories")
    parser.add_argument("--server", default=DEFAULT_SERVER, help=f"default {DEFAULT_SERVER}")
    parser.add_argument("--jobs", type=int, default=4, help="uploads at once (default 4)")
    parser.add_argument(
        "--glob", default="*", help="names of files to take from directories (default: all)"
    )
    parser.add_argument("--map", help="write {path: id} here: JSON, or CSV if it ends in .csv")
    parser.add_argument("--config")


@dataclass
class Tally:
    uploaded: int = 0
    present: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)
    unsent: int = 0  # files never tried: the server could not be reached at all

    def line(self) -> str:
        failed = len(self.failed) + self.unsent
        return f"{self.uploaded} uploaded, {self.present} already stored, {failed} failed"


class Unreachable(Exception):
    """The server does not answer /health: no file is tried (each would wait out retries)."""


def files(paths: list[str], pattern: str) -> Iterator[tuple[str, str | None]]:
    """(path, problem) in a stable order: files named as given, directories walked sorted.

    `pattern` filters the names found in directories; a file named on the command line is
    always taken. Paths are normalised (`./photos/a.jpg` is `photos/a.jpg`), so the map's
    keys do not depend on how a directory was written.
    """
    seen: set[str] = set()
    for given in map(os.path.normpath, paths):
        if os.path.isfile(given):
            found = [given]
        elif os.path.isdir(given):
            found = list(_walk(given, pattern))
        else:
            yield given, "no such file or directory"
            continue
        for path in found:  # a file reached twice (`photos photos/a.jpg`) is sent once
            if path not in seen:
                seen.add(path)
                yield path, None


def _walk(root: str, pattern: str) -> Iterator[str]:
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(folder, name)
            # Not sockets, fifos or broken links.
            if fnmatch.fnmatch(name, pattern) and os.path.isfile(path):
                yield path


def run(args: argparse.Namespace) -> int:
    if args.jobs < 1:
        print("progimage: --jobs must be at least 1", file=sys.stderr)
        return 2
    if not args.server.startswith(("http://", "https://")) or not urlsplit(args.server).hostname:
        print(f"progimage: --server {args.server}: expected an http(s):// URL", file=sys.stderr)
        return 2
    tally = Tally()
    interrupted = False
    try:
        asyncio.run(_upload(args, tally))
    except KeyboardInterrupt:
        interrupted = True
    except Unreachable as exc:
        print(f"progimage: {exc}", file=sys.stderr)
    if args.map:  # what finished, even when interrupted
        _write_map(Path(args.map), tally.ids)
    for path, problem in tally.failed.items():
        print(f"progimage: {path}: {problem}", file=sys.stderr)
    if interrupted:
        print("progimage: interrupted; run the same command again to finish", file=sys.stderr)
    print(tally.line(), flush=True)
    return 130 if interrupted else 0 if not (tally.failed or tally.unsent) else 1


async def _upload(args: argparse.Namespace, tally: Tally) -> None:
    todo = await asyncio.to_thread(_survey, args.paths, args.glob, tally)
    queue: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
    for item in todo:
        queue.put_nowait(item)
    token = os.environ.get(TOKEN_VARIABLE) or None
    if todo:  # a second or two of patience here, not every file's retries against nobody
        async with AsyncClient(args.server, retries=2) as probe:
            try:
                await probe.health()
            except ProgImageError as exc:
                tally.unsent = len(todo)
                raise Unreachable(str(exc)) from None
    async with AsyncClient(args.server, token=token) as client:
        await _send_all(client, queue, [size for _, size in todo], args.jobs, tally)


def _survey(paths: list[str], pattern: str, tally: Tally) -> list[tuple[str, int]]:
    """(path, size) of every file to send; what cannot be read goes to the failures."""
    todo = []
    for path, problem in files(paths, pattern):
        try:
            if problem is None:
                todo.append((path, os.path.getsize(path)))
                continue
        except OSError as exc:
            problem = exc.strerror or str(exc)
        tally.failed[path] = problem
    return todo


async def _send_all(
    client: AsyncClient, queue: asyncio.Queue, sizes: list[int], jobs: int, tally: Tally
) -> None:
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
        TransferSpeedColumn(), TimeRemainingColumn(),
        console=Console(stderr=True), transient=False,
    )  # fmt: skip
    with progress:
        total = len(sizes)
        task = progress.add_task(f"0/{total} files", total=sum(sizes))
        finished = 0

        def done(size: int) -> None:
            nonlocal finished
            finished += 1
            progress.update(
                task, advance=size,
                description=f"{finished}/{total} files: {tally.uploaded} uploaded, "
                f"{tally.present} already stored, {len(tally.failed)} failed",
            )  # fmt: skip

        workers = [
            asyncio.create_task(_worker(client, queue, tally, done))
            for _ in range(min(jobs, max(1, total)))
        ]
        await asyncio.gather(*workers)


async def _worker(
    client: AsyncClient, queue: asyncio.Queue, tally: Tally, done: Callable[[int], None]
) -> None:
    while not queue.empty():
        path, size = queue.get_nowait()
        try:
            image = await asyncio.to_thread(file_id, path)
            if await client.exists(image):
                tally.present += 1
            else:
                stored = await client.upload(path)
                image = stored.id
                if stored.new:
                    tally.uploaded += 1
                else:  # another client stored the same bytes meanwhile
                    tally.present += 1
            tally.ids[path] = image
        except ProgImageError as exc:
            tally.failed[path] = str(exc)
        except OSError as exc:
            tally.failed[path] = exc.strerror or str(exc)
        done(size)


def _write_map(path: Path, ids: dict[str, str]) -> None:
    """Written whole to a temp file then renamed, so a map is never half a map."""
    ordered = dict(sorted(ids.items()))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.chmod(tmp, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
        if path.suffix.lower() == ".csv":
            writer = csv.writer(fh)
            writer.writerow(["path", "id"])
            writer.writerows(ordered.items())
        else:
            json.dump(ordered, fh, indent=2)
            fh.write("\n")
    os.replace(tmp, path)
