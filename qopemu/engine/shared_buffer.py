"""Big blocks of bytes handed from a worker to the server without copying them through the socket.

A simulation's output samples are megabytes. Pickled or sent as raw bytes over the worker's socket, they cost two
kernel copies and, in `multiprocessing.connection`, a chunked read into a growing buffer plus a final copy: about
1.3 ms per MB on the server, which also holds the GIL the gRPC threads need. Instead the worker writes the samples
into an anonymous shared file (`memfd_create` on Linux, an unlinked temporary file elsewhere) and passes its
descriptor over the same Unix socket (SCM_RIGHTS), right after the message that announces the block, so the order
of messages is kept. The server maps the block and keeps it as the samples: nothing is copied, and the memory goes
back to the system when the samples are dropped.

New memory costs a page fault per 4 KiB page on first touch (about 0.6 ms per MB here), so each side takes its
faults where they cost least: the worker prepares the block for its next simulation when it starts and after each
job (while the client decodes), and the server maps a block with all its pages at once (MAP_POPULATE).
"""

from __future__ import annotations

import mmap
import os
import socket
import tempfile
import threading

import numpy as np

# A worker keeps a block ready for its next simulation: at least this big (so that its first simulations find one),
# as big as its last simulation needed, and at most SPARE_MAX_BYTES.
SPARE_MIN_BYTES = 8 << 20
SPARE_MAX_BYTES = 64 << 20
_POPULATE = getattr(mmap, "MAP_POPULATE", 0)  # Linux: map every page in one call instead of one fault per page


def _shared_file(nbytes: int) -> int:
    """A descriptor of a new anonymous file of `nbytes` (at least 1) that lives in memory and can be passed on."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("qopemu-samples", os.MFD_CLOEXEC)
    else:
        with tempfile.TemporaryFile() as handle:
            fd = os.dup(handle.fileno())
    os.ftruncate(fd, max(1, nbytes))  # mmap refuses an empty length
    return fd


class BlockWriter:
    """The worker's side: a fresh writable block for each simulation's samples, given away to the server. The next
    block is prepared once a job is over (`prepare_spare`), on the job's thread, while the worker already takes the
    next job: a lock makes that job's `allocate` wait for it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spare: tuple[int, mmap.mmap] | None = None
        self._fd: int | None = None
        self._last_nbytes = 0

    def allocate(self, nbytes: int) -> np.ndarray:
        """A writable flat uint8 array of `nbytes`: the block to announce, then `send`, then fill."""
        with self._lock:
            self._last_nbytes = nbytes
            if self._spare is not None and len(self._spare[1]) >= nbytes:
                self._fd, mapping = self._spare
                self._spare = None
                os.ftruncate(self._fd, max(1, nbytes))  # the pages past the samples go back to the system now
            else:
                self._discard_spare()
                self._fd = _shared_file(nbytes)
                mapping = mmap.mmap(self._fd, max(1, nbytes))
        return np.frombuffer(mapping, dtype=np.uint8, count=nbytes)  # the array keeps the mapping alive

    def send(self, sock_fd: int) -> None:
        """Pass the block's descriptor to the server and close it here; the worker's mapping stays while the job
        fills it."""
        with socket.fromfd(sock_fd, socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            socket.send_fds(sock, [b"F"], [self._fd])
        os.close(self._fd)
        self._fd = None

    def prepare_spare(self) -> None:
        """Have a block ready, its pages already allocated, for a next simulation as big as the last one."""
        with self._lock:
            nbytes = min(max(self._last_nbytes, SPARE_MIN_BYTES), SPARE_MAX_BYTES)
            if self._spare is not None and len(self._spare[1]) >= nbytes:
                return
            self._discard_spare()
            fd = _shared_file(nbytes)
            self._spare = fd, mmap.mmap(fd, nbytes, flags=mmap.MAP_SHARED | _POPULATE)

    def _discard_spare(self) -> None:
        if self._spare is not None:
            os.close(self._spare[0])
            self._spare[1].close()
            self._spare = None


def receive_block(sock_fd: int, nbytes: int) -> memoryview:
    """The block whose descriptor the worker just passed, mapped read-only; the view keeps the mapping alive."""
    with socket.fromfd(sock_fd, socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        _, fds, _, _ = socket.recv_fds(sock, 1, 1)
    if not fds:
        raise EOFError("the worker closed its connection before handing over the samples")
    try:
        mapping = mmap.mmap(fds[0], max(1, nbytes), flags=mmap.MAP_SHARED | _POPULATE, prot=mmap.PROT_READ)
    finally:
        os.close(fds[0])
    return memoryview(mapping)[:nbytes]
