"""One training run per model folder: an OS file lock on ``<model_dir>/.lock``.

Two trainers writing checkpoints into one folder interleave them, and one
can delete a checkpoint the other is about to restore. ``erlrestore-train``
holds an exclusive ``flock`` on ``<model_dir>/.lock`` for the whole run; the
file holds the owner's process id and host name, for the error a second
trainer gets. The operating system drops the lock when the process ends in
any way (kill -9 included), so a lock is never stale; the file itself may
stay and means nothing by itself. Where ``fcntl`` does not exist (Windows)
no lock is taken (our choice: training still runs, unguarded).
"""

import contextlib
import os
import socket

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

LOCK_FILE = ".lock"


class FolderBusyError(OSError):
    """Another process holds the model folder's lock."""


@contextlib.contextmanager
def locked(model_dir):
    """Holds ``<model_dir>/.lock`` for the ``with`` block; FolderBusyError naming the holder if taken."""
    if fcntl is None:
        yield None
        return
    path = os.path.join(model_dir, LOCK_FILE)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            raise FolderBusyError(
                f"{model_dir} is in use by another training run ({holder}); wait for it to finish or stop it, "
                "or choose another --model_dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)  # closing the descriptor releases the lock
