"""`qopemu serve | demo | status`."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from qopemu import __version__, settings as settings_module


def _serve(args) -> int:
    from qopemu.server import Server

    try:
        settings = settings_module.load(args.config, host=args.host, port=args.port, workers=args.workers,
                                        realtime=True if args.realtime else None,
                                        simulation_samples="float32" if args.float32_samples else None)
    except settings_module.SettingsError as exc:
        print(f"qopemu: {exc}", file=sys.stderr)
        return 2
    server = Server(settings, port=settings.port)
    try:
        server.start()
    except OSError as exc:
        print(f"qopemu: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    logging.getLogger("qopemu").info("shutting down")
    server.stop()
    return 0


def _demo(args) -> int:
    from qopemu.demo import run_demo

    # The demo narrates what happens; other libraries' info logs would drown it.
    for handler in logging.getLogger().handlers:
        handler.setLevel(max(handler.level, logging.WARNING))
    run_demo()
    return 0


def _status(args) -> int:
    from qm import QuantumMachinesManager

    qmm = QuantumMachinesManager(args.host, args.port)
    print(f"server {args.host}:{args.port}: {qmm.version().gateway}")
    for qm_id in qmm.list_open_qms():
        qm = qmm.get_qm(qm_id)
        running = qm.get_running_job()
        print(f"  {qm_id}: {qm.queue.count} pending, running: {running.id if running else 'none'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="qopemu", description="Quantum Orchestration Platform emulator")
    parser.add_argument("--version", action="version", version=f"qopemu {__version__}")
    parser.add_argument("--log-level", default=os.environ.get("QOPEMU_LOG_LEVEL", "INFO"),
                        help="DEBUG logs every request (default INFO)")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the server until Ctrl-C / SIGTERM")
    serve.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port to listen on (default 9510)")
    serve.add_argument("--config", default=None, help="TOML settings file (see qopemu/settings.py)")
    serve.add_argument("--workers", type=int, default=None, help="warm worker processes (default 2)")
    serve.add_argument("--realtime", action="store_true", help="pace jobs to the hardware time they represent")
    serve.add_argument("--float32-samples", action="store_true",
                       help="send simulated analog samples as float32 (faster) instead of the platform's float64")
    serve.set_defaults(run=_serve)

    demo = commands.add_parser("demo", help="start an embedded server and play the multi-user story")
    demo.set_defaults(run=_demo)

    status = commands.add_parser("status", help="show the open QMs and queues of a running server")
    status.add_argument("--host", default="127.0.0.1")
    status.add_argument("--port", type=int, default=9510)
    status.set_defaults(run=_status)

    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
