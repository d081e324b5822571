"""Writing files so that readers never see half of one."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import BinaryIO, Callable


def atomic_write(target: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write a temporary file in the target's folder, fsync, rename it over the target; on any
    failure the temporary file is removed and an existing target is left untouched."""
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if os.name == "posix":  # make the rename itself durable
        dir_fd = os.open(target.parent, os.O_RDONLY)
        os.fsync(dir_fd)
        os.close(dir_fd)
