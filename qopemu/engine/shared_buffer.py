"""Big blocks of bytes handed from a worker to the server without copying them through the socket.

A simulation's output samples are megabytes. Pickled or sent as raw bytes over the worker's socket, they cost two
kernel copies and, in `multiprocessing.connection`, a chunked read into a growing buffer plus a final copy: about
1.3 ms per MB on the server, which also holds the GIL the gRPC threads need. Instead the worker writes the block
into an anonymous shared file (`memfd_create` on Linux, an unlinked temporary file elsewhere) and passes its
descriptor over the same Unix socket (SCM_RIGHTS); the server maps it read-only. The memory lives as long as the
server's mapping: it is freed when the samples are dropped.

The descriptor goes right after the message that announces the block, on the same socket, so the order of
messages is kept and the reader knows when to expect it.
"""

from __future__ import annotations

import mmap
import os
import socket
import tempfile

import numpy as np


class SharedBlock:
    """A writable block of `nbytes` in the worker, backed by a shared file whose descriptor can be sent."""

    def __init__(self, nbytes: int):
        self.nbytes = nbytes
        if hasattr(os, "memfd_create"):
            self.fd = os.memfd_create("qopemu-samples", os.MFD_CLOEXEC)
        else:
            with tempfile.TemporaryFile() as handle:
                self.fd = os.dup(handle.fileno())
        os.ftruncate(self.fd, nbytes)
        # mmap refuses an empty length; an empty block needs no memory anyway.
        self._map = mmap.mmap(self.fd, nbytes) if nbytes else None

    def array(self) -> np.ndarray:
        """The block as a writable flat uint8 array."""
        return np.frombuffer(self._map, dtype=np.uint8) if self._map is not None else np.zeros(0, np.uint8)

    def release_memory(self) -> None:
        """Unmap the block in this process; the file (and the bytes) stay until the descriptor is sent and closed."""
        if self._map is not None:
            self._map.close()
            self._map = None


    def discard(self) -> None:
        """Free the block without sending it (packing failed)."""
        self.release_memory()
        os.close(self.fd)


def send_descriptor(sock_fd: int, fd: int) -> None:
    """Pass `fd` over the Unix socket `sock_fd`, then close it here (the receiver holds its own copy)."""
    with socket.fromfd(sock_fd, socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        socket.send_fds(sock, [b"F"], [fd])
    os.close(fd)


def receive_block(sock_fd: int, nbytes: int) -> np.ndarray:
    """Take the descriptor `send_descriptor` passed and map its `nbytes` read-only, as a flat uint8 array that
    keeps the mapping alive."""
    with socket.fromfd(sock_fd, socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        _, fds, _, _ = socket.recv_fds(sock, 1, 1)
    if not fds:
        raise EOFError("the worker closed its connection before handing over the samples")
    try:
        if nbytes == 0:
            return np.zeros(0, np.uint8)
        return np.frombuffer(mmap.mmap(fds[0], nbytes, prot=mmap.PROT_READ), dtype=np.uint8)
    finally:
        for fd in fds:
            os.close(fd)
