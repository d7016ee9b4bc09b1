"""qopemu: an emulator of the Quantum Orchestration Platform server (OPX+, QOP 2.x) for the qm-qua client."""

__version__ = "0.1.0"
