"""The worker's prefetch is what docs/configuration.md says it is: twice PMTABOUNCE_BATCH_SIZE."""

from __future__ import annotations

import re
from pathlib import Path

from rabbit_management import ensure_management_api
from worker_fleet import Fleet, wait_for, worker_env

from pmtabounce import queues

CONFIGURATION = Path(__file__).parents[2] / "docs" / "configuration.md"


def test_the_prefetch_is_twice_the_batch_size_as_the_docs_say(iem_db, vhost, tmp_path):
    row = next(line for line in CONFIGURATION.read_text().splitlines() if line.startswith("| `PMTABOUNCE_BATCH_SIZE`"))
    assert re.search(r"prefetch is twice this", row), row

    api = ensure_management_api()

    def prefetch() -> list[int]:
        return [c["prefetch_count"] for c in queues.ManagementApi((api,)).request(f"/api/consumers/{vhost.name}")]

    with Fleet(worker_env(iem_db.url, vhost.url, batch_size=7), tmp_path) as fleet:
        worker = fleet.start()
        wait_for(lambda: prefetch() == [14], "the worker's consumer with a prefetch of 14", 60)
        assert fleet.terminate(worker) == 0
