"""qopemu: an emulator of the Quantum Orchestration Platform server (OPX+, QOP 2.x) for the qm-qua client."""

__version__ = "0.1.0"
__all__ = ["Server", "__version__"]


def __getattr__(name: str):
    # Imported on first use so that worker processes, which only need the engine, start without grpc.
    if name == "Server":
        from qopemu.server import Server

        return Server
    raise AttributeError(f"module 'qopemu' has no attribute {name!r}")
