"""What a Dask task runs on a worker machine: grade one submission and return its report as JSON.

Each Dask worker process keeps one prepared rubric and one zygote, so torch and the reference are
loaded once per worker, not once per submission, exactly as in a local batch.
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

_cache: dict[str, tuple] = {}
_lock = threading.Lock()


def grade_remote(student: str, source: str, data: bytes, suffix: str, notes: tuple[str, ...],
                 rubric_path: str) -> str:
    from ..engine import prepare
    from ..rubric import load_rubric
    from ..sandbox import Zygote
    from .collect import Entry
    from .run import grade_entry

    with _lock:
        if rubric_path not in _cache:
            rubric = load_rubric(rubric_path)
            zygote = Zygote(wait=False)  # imports torch while this process prepares
            try:
                prepared, diagnoser = prepare(rubric, list(rubric.steps))
                zygote.prepare_for(prepared)
            except BaseException:
                zygote.close()
                raise
            _cache[rubric_path] = (rubric, prepared, diagnoser, zygote)
        rubric, prepared, diagnoser, zygote = _cache[rubric_path]
    with tempfile.TemporaryDirectory(prefix="attention-grader-task-") as folder:
        path = Path(folder) / f"submission{suffix}"
        path.write_bytes(data)
        entry = Entry(student, path, source, tuple(notes))
        return grade_entry(entry, rubric, prepared, diagnoser, zygote).to_json()
