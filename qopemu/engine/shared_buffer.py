"""Big blocks of bytes handed from a worker to the server without copying them through the socket.

A simulation's output samples are megabytes. Pickled or sent as raw bytes over the worker's socket, they cost two
kernel copies and, in `multiprocessing.connection`, a chunked read into a growing buffer plus a final copy: about
1.3 ms per MB on the server, which also holds the GIL the gRPC threads need. Instead the worker writes the block
into an anonymous shared file (`memfd_create` on Linux, an unlinked temporary file elsewhere) and passes its
descriptor over the same Unix socket (SCM_RIGHTS), right after the message that announces the block, so the order
of messages is kept.

Fresh shared memory is slow to touch (each new page is allocated and zeroed on first write: about 0.6 ms per MB),
so a worker keeps its block for the next simulation, and the server copies the samples out of it, part by part as
the worker says they are ready, before the job ends. A block larger than `KEEP_BYTES` is used once, then freed.
"""

from __future__ import annotations

import mmap
import os
import socket
import tempfile

import numpy as np

# The largest block a worker keeps between simulations (and the server keeps mapped per worker).
KEEP_BYTES = 64 << 20


class _SharedFile:
    """A shared file of `nbytes` mapped read-write in this process."""

    def __init__(self, nbytes: int):
        self.nbytes = nbytes
        if hasattr(os, "memfd_create"):
            self.fd = os.memfd_create("qopemu-samples", os.MFD_CLOEXEC)
        else:
            with tempfile.TemporaryFile() as handle:
                self.fd = os.dup(handle.fileno())
        os.ftruncate(self.fd, max(1, nbytes))  # mmap refuses an empty length
        self.map = mmap.mmap(self.fd, max(1, nbytes))

    def close(self) -> None:
        """Close the descriptor and drop the mapping (unmapped as soon as no array views it)."""
        os.close(self.fd)
        self.map = None


class BlockWriter:
    """The worker's side: a writable block for each simulation's samples, the same one while it is big enough."""

    def __init__(self) -> None:
        self._kept: _SharedFile | None = None
        self._current: _SharedFile | None = None
        self._is_new = False

    def allocate(self, nbytes: int) -> np.ndarray:
        """A writable flat uint8 array of `nbytes`, to fill before `send`."""
        if self._kept is not None and nbytes <= self._kept.nbytes:
            self._current, self._is_new = self._kept, False
        else:
            if self._kept is not None and nbytes <= KEEP_BYTES:
                self._kept.close()  # outgrown: the server drops its mapping when it receives the new one
                self._kept = None
            self._current, self._is_new = _SharedFile(nbytes), True
            if nbytes <= KEEP_BYTES:
                self._kept = self._current
        return np.frombuffer(self._current.map, dtype=np.uint8, count=nbytes)

    def announce(self) -> tuple[bool, bool]:
        """What the message announcing the block says: (a new descriptor follows, the block is kept for reuse)."""
        return self._is_new, self._current is self._kept

    def send(self, sock_fd: int) -> None:
        """Pass the descriptor when the block is new; a block used once is closed here once it is sent."""
        if self._is_new:
            with socket.fromfd(sock_fd, socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                socket.send_fds(sock, [b"F"], [self._current.fd])
        if self._current is not self._kept:
            self._current.close()
        self._current = None


class BlockReader:
    """The server's side, one per worker: the worker's kept block stays mapped between simulations."""

    def __init__(self) -> None:
        self._kept: mmap.mmap | None = None

    def open(self, sock_fd: int, nbytes: int, is_new: bool, is_kept: bool) -> memoryview:
        """The block the worker announced, read-only: its descriptor is taken from the socket when it is new. The
        worker fills it afterwards, and says how far; a kept block is reused by the worker's next simulation, so
        what it holds must be copied out before that job's end."""
        if is_new:
            fd = _receive_descriptor(sock_fd)
            try:
                mapping = mmap.mmap(fd, max(1, nbytes), prot=mmap.PROT_READ)
            finally:
                os.close(fd)
            if not is_kept:
                return memoryview(mapping)  # used once: the mapping goes when the view does
            self._kept = mapping
        if self._kept is None:
            raise EOFError("the worker reused a block it never handed over")
        return memoryview(self._kept)


def _receive_descriptor(sock_fd: int) -> int:
    with socket.fromfd(sock_fd, socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        _, fds, _, _ = socket.recv_fds(sock, 1, 1)
    if not fds:
        raise EOFError("the worker closed its connection before handing over the samples")
    return fds[0]
