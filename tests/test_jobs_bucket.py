"""Job records in the bucket (storage.backend s3): shared by nodes, lost when their node is."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

from test_store_contract import s3_store

from proxy.jobs import BucketBoard, Jobs


async def test_records_in_the_bucket_are_shared_and_a_silent_node_reads_as_lost(s3_env, tmp_path):
    store = s3_store(s3_env, tmp_path / "tmp", f"jobs-{uuid.uuid4().hex[:8]}")
    await store.open()
    mine = Jobs(tmp_path / "a", concurrency=1, board=BucketBoard(store, 3600, heartbeat=0.1))
    theirs = Jobs(tmp_path / "b", concurrency=1, board=BucketBoard(store, 3600, heartbeat=0.1))
    await mine.open()
    await theirs.open()
    gate = asyncio.Event()

    async def waits() -> dict:
        await gate.wait()
        return {"id": "abc"}

    job = await mine.submit(waits)
    await asyncio.sleep(0.5)  # past STALE heartbeats: only the heartbeat keeps it pending
    assert (await theirs.get(job))["status"] == "pending"
    gate.set()
    for _ in range(100):
        state = await theirs.get(job)
        if state["status"] != "pending":
            break
        await asyncio.sleep(0.02)
    assert state == {"job": job, "status": "done", "image": {"id": "abc"}, "error": None}
    # A pending record nobody refreshes (its node was killed) reads as lost.
    orphan = "e" * 32
    record = {"job": orphan, "status": "pending", "image": None, "error": None,
              "finished": None, "updated": time.time() - 60}  # fmt: skip
    await store.put_blob(f"jobs/{orphan}", json.dumps(record).encode(), {})
    lost = await theirs.get(orphan)
    assert lost["status"] == "failed" and lost["error"]["type"].endswith("/job-lost")
    assert await theirs.get("f" * 32) is None
    await mine.close()
    await theirs.close()
    await store.close()
