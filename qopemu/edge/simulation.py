"""The protocol side of simulation: `Frontend.Simulate` requests in, simulated parts and sample streams out.

Wire facts (shared/protocol/QOP2-PROTOCOL.md §7, checked against qm-qua 1.4.1 `qm/api/simulation_api.py`,
`qm/simulate/{loopback,raw}.py`, `qm/jobs/simulated_job.py`, `qm/simulate/_simulator_samples.py`):

- `simulate.duration` counts 4 ns clock cycles; the client assumes 1 GS/s samples, so D cycles give 4·D rows.
- Loopback 4-tuples arrive with FEM 0, 6-tuples with their FEMs (ignored on an OPX+); an element 3-tuple
  `(fromElement, toElement, toElementInput)` arrives as fromController=fromElement, toController=toElement, FEM and
  fromPort -1, toPort=input, and is resolved here through the config.
- Raw connections name the *input* port in `fromController`/`fromPort` and carry its samples, 1 ns each.
- `noisePower` is a variance in V².
- Samples: one header (`simpleDType`: plain JSON list of `[column, dtype]`, `countOfItems` rows), then `data`
  chunks (of any size) that together hold the packed row-major records; every message has ok=true. Columns are
  `"<controller>:analog:<port>"` (`<f8` volts, or `<f4` by setting: engine/packed_samples.py) and `"<controller>:digital:<port>"` (`|b1`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Iterable, Iterator

import grpc
import numpy as np
from numpy.lib.recfunctions import repack_fields
from qm.grpc.qm.pb import frontend_pb2, job_results_pb2

from qopemu.engine.inputs import noise_std_from_power, resolve_wire
from qopemu.engine.inputs import InputModel
from qopemu.engine.packed_samples import PackedSamples, SamplesFailed
from qopemu.engine.timing import CLOCK_NS
from qopemu.edge.errors import COMPILER, answers
from qopemu.edge.identity import Identity
from qopemu.edge.report_struct import encode_struct, length_delimited
from qopemu.engine.waveform_report import SimulationReport
from qopemu.platform.qop import Qop
from qopemu.qmconfig import QmConfig
from qopemu.settings import LOOPBACK_LATENCY_NS

# The client refuses messages over 100 MB (`qm.api.models.server_details.MAX_MESSAGE_SIZE`); a simulation's reply
# keeps well below, for its other fields.
REPLY_LIMIT_BYTES = 96 << 20

# Data chunk size. 64 KiB chunks work, but per-message costs then dominate a pull: 1 MiB chunks pull 400 us of
# 4 ports about 3x faster. The client accepts messages up to 100 MB (`qm.api.models.server_details.MAX_MESSAGE_SIZE`).
CHUNK_BYTES = 1 << 20

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InputWiring:
    """What the request wires into the analog inputs, as plain (picklable) data.

    `model(config)` gives the worker's `InputModel`, with element wires resolved to ports. `wires` are the loopback connections as sent (6 numbers, FEMs ignored on
    an OPX+); `raw` maps (controller, input port) to its samples."""

    noise_std: float = 0.0
    latency_ns: int = LOOPBACK_LATENCY_NS
    wires: tuple[tuple[str, int, int, str, int, int], ...] = ()
    raw: tuple[tuple[str, int, tuple[float, ...]], ...] = ()

    def model(self, config: QmConfig) -> InputModel:
        loopback = tuple(resolve_wire(config, wire) for wire in self.wires)
        return InputModel(noise_std=self.noise_std, loopback=loopback, latency_ns=self.latency_ns, raw=self.raw)


@dataclass(frozen=True)
class SimulationSpec:
    """A simulation request without its config and program.

    `include_analog` / `include_digital` are the request's includeAnalogWaveforms / includeDigitalWaveforms: they ask
    for the deprecated per-port lists (the waveform report comes with every simulation). Samples are pulled later with
    their own flags, so a run renders both kinds anyway.
    """

    duration_ns: int
    include_analog: bool
    include_digital: bool
    inputs: InputWiring


def parse_simulation_request(request: frontend_pb2.SimulationRequest) -> SimulationSpec:
    simulate = request.simulate
    return SimulationSpec(
        duration_ns=CLOCK_NS * int(simulate.duration),
        include_analog=bool(simulate.includeAnalogWaveforms),
        include_digital=bool(simulate.includeDigitalWaveforms),
        inputs=_input_wiring(simulate.simulationInterface),
    )


def _input_wiring(interface) -> InputWiring:
    which = interface.WhichOneof("interface_oneof")
    if which == "loopback":
        loopback = interface.loopback
        wires = tuple(
            (c.fromController, int(c.fromFem), int(c.fromPort), c.toController, int(c.toFem), int(c.toPort))
            for c in loopback.connections
        )
        return InputWiring(noise_std_from_power(loopback.noisePower), int(loopback.latency), wires)
    if which == "raw":
        fed: dict[tuple[str, int], np.ndarray] = {}
        for c in interface.raw.connections:
            samples = np.asarray(c.toSamples, dtype=float)
            key = (c.fromController, int(c.fromPort))
            previous = fed.get(key)
            if previous is not None:  # two sample lists into one input add up
                size = max(previous.size, samples.size)
                samples = np.pad(previous, (0, size - previous.size)) + np.pad(samples, (0, size - samples.size))
            fed[key] = samples
        raw = tuple((controller, port, tuple(samples.tolist())) for (controller, port), samples in fed.items())
        return InputWiring(noise_std_from_power(interface.raw.noisePower), raw=raw)
    return InputWiring()


def build_simulated_part(report: SimulationReport, job_id: str = "") -> bytes:
    """The serialized `simulated` part of the response: the waveform report always (an empty Struct would make
    `get_simulated_waveform_report()` return None, the client's sign of an error), and the deprecated per-port Structs
    (`analogOutputs`/`digitalOutputs`) the report carries, which the client returns from
    `simulated_analog_waveforms()` / `simulated_digital_waveforms()`; absent, they read as None. The samples travel
    through `PullSimulatorSamples`.

    Built as bytes (edge/report_struct.py): a report of 100 000 pulses is 65 MB, which protobuf takes seconds to parse
    into a message and serialize again. A report the client could not receive is left out, and the server says so."""
    fields = [(_WAVEFORM_REPORT_FIELD, report.report), (_ANALOG_OUTPUTS_FIELD, report.analog_outputs),
              (_DIGITAL_OUTPUTS_FIELD, report.digital_outputs)]
    parts = []
    for number, value in fields:
        if value is None:
            continue
        encoded = encode_struct(value)
        if sum(map(len, parts)) + len(encoded) > REPLY_LIMIT_BYTES:
            log.warning("simulation %s: its %s takes %d MB, more than the client accepts in a reply; it is left out",
                        job_id, _PART_FIELDS.fields_by_number[number].name, len(encoded) >> 20)
            continue
        parts += [length_delimited(number, len(encoded)), encoded]  # joined once below: a report may be 65 MB
    return b"".join(parts)


def stream_samples(
    samples: PackedSamples, include_analog: bool, include_digital: bool, job_id: str = ""
) -> Iterator[bytes]:
    """The `PullSimulatorSamples` stream, as serialized `SimulatorSamplesResponse` messages: a header, then the packed
    records in chunks of at most `CHUNK_BYTES`, each as soon as the worker has rendered it. Samples that fail to
    render end the stream with ok=false, on which the client raises `QMSimulationError`."""
    Response = job_results_pb2.SimulatorSamplesResponse
    wanted = {"analog": include_analog, "digital": include_digital}
    names = [samples.dtype.names[i] for i, (_, kind, _) in enumerate(samples.columns) if wanted[kind]]
    dtypes = [[name, samples.dtype.fields[name][0].str] for name in names]
    header = Response.Header(simpleDType=json.dumps(dtypes), countOfItems=samples.rows if names else 0)
    yield Response(jobId=job_id, ok=True, header=header).SerializeToString()
    opening = Response(jobId=job_id, ok=True).SerializeToString()
    try:
        if len(names) == len(samples.columns):
            parts: Iterable[memoryview] = samples.parts()
        else:  # a subset of the columns: repack those records, once all are there
            parts = [memoryview(repack_fields(samples.records()[names]).tobytes())] if names else []
        for part in parts:
            for offset in range(0, len(part), CHUNK_BYTES):
                yield _data_message(opening, part[offset : offset + CHUNK_BYTES])
    except SamplesFailed as exc:
        log.error("simulation %s: its samples could not be rendered: %s", job_id, exc)
        yield Response(jobId=job_id, ok=False).SerializeToString()


# Serialized messages are concatenations of their fields, so a data message is the message's other fields followed by
# its `data` field: a tag and a length (https://protobuf.dev/programming-guides/encoding/, "Length-Delimited Records")
# in front of the chunk. Built so, a 1 MiB chunk is copied once; a message object would copy it in and out again.
_DATA_FIELD = job_results_pb2.SimulatorSamplesResponse.DESCRIPTOR.fields_by_name["data"].number
_DATA_BYTES_FIELD = job_results_pb2.SimulatorSamplesResponse.Data.DESCRIPTOR.fields_by_name["data"].number


def _data_message(opening: bytes, chunk: memoryview) -> bytes:
    """`SimulatorSamplesResponse{<opening's fields>, data: Data{data: chunk}}`, serialized."""
    inner = length_delimited(_DATA_BYTES_FIELD, len(chunk))
    return opening + length_delimited(_DATA_FIELD, len(inner) + len(chunk)) + inner + chunk


_PART_FIELDS = frontend_pb2.SimulatedResponsePart.DESCRIPTOR
_WAVEFORM_REPORT_FIELD = _PART_FIELDS.fields_by_name["waveformReport"].number
_ANALOG_OUTPUTS_FIELD = _PART_FIELDS.fields_by_name["analogOutputs"].number
_DIGITAL_OUTPUTS_FIELD = _PART_FIELDS.fields_by_name["digitalOutputs"].number
_SIMULATED_FIELD = frontend_pb2.SimulationResponse.DESCRIPTOR.fields_by_name["simulated"].number


def simulation_rpc_handler(simulation: "SimulationHandler", identity: Identity) -> grpc.GenericRpcHandler:
    """`Frontend.Simulate` and `Frontend.PullSimulatorSamples`, served with their replies already serialized
    (`SimulationHandler.simulate`, `stream_samples`). Registered before the client's generated Frontend handlers,
    whose serializer would want message objects, so it takes precedence for these two methods."""
    return grpc.method_handlers_generic_handler("qm.grpc.frontend.Frontend", {
        "Simulate": grpc.unary_unary_rpc_method_handler(
            lambda request, context: simulation.simulate(request, identity.caller(context)),
            request_deserializer=frontend_pb2.SimulationRequest.FromString,
            response_serializer=bytes,
        ),
        "PullSimulatorSamples": grpc.unary_stream_rpc_method_handler(
            simulation.pull_samples,
            request_deserializer=job_results_pb2.PullSimulatorSamplesRequest.FromString,
            response_serializer=bytes,
        ),
    })


class SimulationHandler:
    """Serves `Frontend.Simulate` and `Frontend.PullSimulatorSamples` on top of the platform.

    The QOP2 client fetches samples and results right after `Simulate` returns, so the run (stream processing
    included) is over before the reply; the output samples render after it, while `PullSimulatorSamples` streams
    them. Samples of both kinds are always rendered: the pull chooses what it wants, whatever the include flags of
    the request (they only ask for the report)."""

    def __init__(self, qop: Qop):
        self._qop = qop

    @answers(COMPILER, lambda fields, request, user: frontend_pb2.SimulationResponse(success=False, **fields)
             .SerializeToString())
    def simulate(self, request: frontend_pb2.SimulationRequest, user: str) -> bytes:
        """The serialized `SimulationResponse`."""
        spec = parse_simulation_request(request)
        job = self._qop.simulate(request.config, request.highLevelProgram, user, duration_ns=spec.duration_ns,
                                 inputs=spec.inputs.model, analog_outputs=spec.include_analog,
                                 digital_outputs=spec.include_digital)
        outcome = job.outcome
        if outcome is None or outcome.samples is None:
            problems = (outcome.messages if outcome is not None else []) or ["the simulation produced no samples"]
            return frontend_pb2.SimulationResponse(
                success=True, jobId=job.id, simulated=frontend_pb2.SimulatedResponsePart(errors=problems)
            ).SerializeToString()
        # A message field that occurs twice merges (protobuf encoding, "Last One Wins" for embedded messages), so the
        # simulated part follows the other fields as its own bytes.
        part = build_simulated_part(outcome.waveform_report, job.id)
        head = frontend_pb2.SimulationResponse(success=True, jobId=job.id).SerializeToString()
        return b"".join((head, length_delimited(_SIMULATED_FIELD, len(part)), part))

    def pull_samples(
        self, request: job_results_pb2.PullSimulatorSamplesRequest, context: object = None
    ) -> Iterator[bytes]:
        """The samples of a finished simulation, as serialized messages; one ok=false message (the client then asks
        to wait for the job) when the id names no simulation with samples."""
        job = self._qop.find_job(request.jobId)
        outcome = job.outcome if job is not None and job.is_simulation else None
        if outcome is None or outcome.samples is None:
            yield job_results_pb2.SimulatorSamplesResponse(jobId=request.jobId, ok=False).SerializeToString()
            return
        yield from stream_samples(outcome.samples, request.includeAnalog, request.includeDigital, job.id)

