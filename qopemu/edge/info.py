"""`io.qualang.api.v1.InfoService`: the handshake that tells the client what server it talks to."""

from __future__ import annotations

from qm.grpc.io.qualang.api.v1 import info_service_pb2, info_service_pb2_grpc

from qopemu import __version__

# What the server can do, as the QOP 2 client understands it (shared/protocol/QOP2-PROTOCOL.md §1). Never add
# "__qop3": it switches the client to the QOP 3 API, which has no positional queue operations.
CAPABILITIES = (
    "qm.job_streaming_state",
    "qm.new_grpc_structure",
    "qm.input_stream",
    "qm.shared_ports",
    "qm.multiple_inputs_for_element",
    "qm.analog_delay",
    "qm.shared_oscillators",
    "qm.crosstalk",
    "qm.inverted_digital_output",
    "qm.double_frequency",
    "qm.sticky_elements",
    "qm.play_tag",
    "qm.fast_frame_rotation",
    "qm.keep_dc_offsets_when_closing",
)

# The client reads the QOP release from this string (`2.6.0-...` -> QOP 2.6.0) and shows the rest.
GATEWAY_VERSION = f"2.6.0-qopemu.{__version__}"


class InfoService(info_service_pb2_grpc.InfoServiceServicer):
    def GetInfo(self, request, context):
        return info_service_pb2.GetInfoResponse(
            implementation=info_service_pb2.ImplementationDetails(
                name="qopemu", version=GATEWAY_VERSION, url="https://github.com/qopemu/qopemu"
            ),
            capabilities=list(CAPABILITIES),
        )
