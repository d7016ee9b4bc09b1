"""Builds the gRPC server and wires the layers together; `Server` is also the embedded form for tests."""

from __future__ import annotations

import dataclasses
import logging
from concurrent.futures import ThreadPoolExecutor

import grpc
from qm.grpc.io.qualang.api.v1 import info_service_pb2_grpc
from qm.grpc.qm.pb import frontend_pb2_grpc, job_manager_pb2_grpc, job_results_pb2_grpc

from qopemu.edge.frontend import FrontendService
from qopemu.edge.identity import Identity
from qopemu.edge.info import GATEWAY_VERSION, InfoService
from qopemu.edge.job_manager import JobManagerService
from qopemu.edge.job_results import JobResultsService
from qopemu.edge.simulation import SimulationHandler, simulation_rpc_handler
from qopemu.platform.qop import Qop
from qopemu.settings import Settings

log = logging.getLogger("qopemu")

# The client allows 100 MiB messages: configs, programs, waveforms and results travel inline.
_MAX_MESSAGE = 100 * 1024 * 1024


class _RequestLogger(grpc.ServerInterceptor):
    """Each request at debug level; the client's HTTP/2 probe arrives as method "/" and is only noted."""

    def intercept_service(self, continuation, handler_call_details):
        if log.isEnabledFor(logging.DEBUG):
            log.debug("request %s", handler_call_details.method)
        return continuation(handler_call_details)


class Server:
    """A qopemu server. As a context manager it starts on a free port (or the settings' port) and stops after.

        with qopemu.Server() as server:
            qmm = QuantumMachinesManager(server.host, server.port)
    """

    def __init__(self, settings: Settings | None = None, *, host: str | None = None, port: int | None = 0):
        base = settings or Settings()
        self.settings = dataclasses.replace(base, host=host or base.host, port=base.port if port is None else port)
        self.qop: Qop | None = None
        self._grpc: grpc.Server | None = None
        self.host = self.settings.host
        self.port = self.settings.port

    def start(self) -> "Server":
        self.qop = Qop(self.settings)
        server = grpc.server(
            ThreadPoolExecutor(max_workers=32, thread_name_prefix="grpc"),
            interceptors=[_RequestLogger()],
            options=[
                ("grpc.max_send_message_length", _MAX_MESSAGE),
                ("grpc.max_receive_message_length", _MAX_MESSAGE),
                ("grpc.so_reuseport", 0),  # a second server on the same port must fail loudly
            ],
        )
        identity = Identity(self.settings.users)
        info_service_pb2_grpc.add_InfoServiceServicer_to_server(InfoService(), server)
        server.add_generic_rpc_handlers((simulation_rpc_handler(SimulationHandler(self.qop), identity),))  # before the Frontend's
        frontend_pb2_grpc.add_FrontendServicer_to_server(FrontendService(self.qop, identity), server)
        job_manager_pb2_grpc.add_JobManagerServiceServicer_to_server(JobManagerService(self.qop), server)
        job_results_pb2_grpc.add_JobResultsServiceServicer_to_server(JobResultsService(self.qop.results_of),
                                                                    server)
        # Port 0 lets the system pick a free port, without the race of probing for one first.
        try:
            bound = server.add_insecure_port(f"{self.host}:{self.port}")
        except RuntimeError:
            bound = 0
        if not bound:
            self.qop.shutdown()
            raise OSError(f"cannot listen on {self.host}:{self.port} (is another server using it?)")
        server.start()
        self._grpc, self.port = server, bound
        log.info("qopemu %s listening on %s:%d, emulating %s", GATEWAY_VERSION, self.host, self.port,
                 self.qop.describe())
        return self

    def stop(self, grace: float = 1.0) -> None:
        if self._grpc is not None:
            self._grpc.stop(grace).wait()
            self._grpc = None
        if self.qop is not None:
            self.qop.shutdown()
            self.qop = None
        log.info("qopemu stopped")

    def wait(self) -> None:
        if self._grpc is not None:
            self._grpc.wait_for_termination()

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


