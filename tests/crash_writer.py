"""artifact.write_pair in a process of its own that SIGKILLs itself before its Nth file-system call.

    python -m tests.crash_writer METADATA_FILE MODEL_SOURCE METADATA_SOURCE N

writes the model bytes of MODEL_SOURCE and the metadata of METADATA_SOURCE (JSON) as the pair
of METADATA_FILE. The calls counted are those that change the folder or make it durable
(os.open, os.fsync, os.replace, os.unlink); N = 0 kills nothing and prints how many there were.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
from pathlib import Path

import artifact

COUNTED = ("open", "fsync", "replace", "unlink")


def main(metadata_file: str, model_source: str, metadata_source: str, kill_at: str) -> None:
    model_bytes, metadata = Path(model_source).read_bytes(), json.loads(Path(metadata_source).read_text())
    calls = 0

    def counted(call):
        @functools.wraps(call)
        def counting(*args, **kwargs):
            nonlocal calls
            calls += 1
            if calls == int(kill_at):
                os.kill(os.getpid(), signal.SIGKILL)
            return call(*args, **kwargs)

        return counting

    for name in COUNTED:  # tempfile and pathlib call these through the os module too
        setattr(os, name, counted(getattr(os, name)))
    artifact.write_pair(Path(metadata_file), model_bytes, metadata)
    print(calls)


if __name__ == "__main__":
    main(*sys.argv[1:])
