"""Files LifeLog writes for others to read (the metrics file, the coverage
page): written aside in the same folder, then renamed over, so a reader sees
the old file or the new one, never a part."""

from __future__ import annotations

import os
import threading
from pathlib import Path


def write_atomically(path: str | os.PathLike[str], text: str, mode: int = 0o644) -> Path:
    """Write `text` to `path` atomically; readable by others by default
    (node_exporter usually runs as another user). The name aside is this
    thread's own: the daemon's health and watchdog jobs may write at once."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    return path
