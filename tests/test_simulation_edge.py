"""The simulation protocol layer against the client's own request builder and decoders."""

from __future__ import annotations

import threading
import time
import warnings
from io import BytesIO

import numpy as np
import pytest
from qm import SimulationConfig
from qm.api.models.capabilities import QopCaps, ServerCapabilities
from qm.api.models.compiler import CompilerOptionArguments
from qm.api.simulation_api import create_simulation_request
from qm.grpc.qm.pb import job_results_pb2
from qm.grpc.qm.pb.frontend_pb2 import SimulatedResponsePart
from qm.jobs.simulated_job import _build_np_array, _write_simulator_result, extract_struct_value
from qm.program import load_config
from qm.qua import program
from qm.simulate.loopback import LoopbackInterface
from qm.simulate.raw import RawInterface
from qm.simulate._simulator_samples import SimulatorSamples
from qm.utils.protobuf_utils import serialized_on_wire
from qm.waveform_report import WaveformReport


from qopemu.edge.simulation import (
    CHUNK_BYTES,
    build_simulated_part,
    parse_simulation_request,
    stream_samples,
)
from qopemu.engine.events import AcquisitionEvent, DcOffsetEvent, PhaseResetEvent, PlayEvent
from qopemu.engine.inputs import Loopback, NoInputs, RawInputs
from qopemu.engine.packed_samples import PackedSamples, SamplesFailed
from qopemu.engine.waveform_report import build
from qopemu.engine.waveforms import render
from test_waveforms import make_config

CAPS = ServerCapabilities(QopCaps.qop2_caps())


def request_for(simulation: SimulationConfig):
    with program() as prog:
        pass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        config_pb = load_config({"controllers": {"con1": {"analog_outputs": {1: {}}}}}, capabilities=CAPS)
    return create_simulation_request(config_pb, prog, simulation, CompilerOptionArguments(), CAPS)


@pytest.fixture(scope="module")
def config():
    return make_config(
        {"elements": {"rr": {"mixInputs": {"I": ("con1", 8), "Q": ("con1", 9), "lo_frequency": 6e9},
                             "intermediate_frequency": 0, "operations": {"x": "iq_const"},
                             "outputs": {"out1": ("con1", 1), "out2": ("con1", 2)},
                             "time_of_flight": 24, "smearing": 0}}}
    )


def decoded(stream):
    """The serialized messages of a stream, parsed by the client's message class."""
    return (job_results_pb2.SimulatorSamplesResponse.FromString(message) for message in stream)


def pulled(samples, include_analog=True, include_digital=True) -> SimulatorSamples:
    """The client's decoding path of PullSimulatorSamples (SimulatedJob._get_np_simulated_samples)."""
    writer, data_writer = BytesIO(), BytesIO()
    for message in decoded(stream_samples(samples.packed(), include_analog, include_digital, job_id="sim-1")):
        assert message.ok
        _write_simulator_result(message, writer, data_writer)
    return SimulatorSamples.from_np_array(_build_np_array(writer, data_writer))


def test_duration_is_in_clock_cycles_and_flags_are_read():
    spec = parse_simulation_request(request_for(SimulationConfig(duration=250, include_analog_waveforms=True)))
    assert spec.duration_ns == 1000
    assert spec.include_analog and not spec.include_digital


def test_no_interface(config):
    source = parse_simulation_request(request_for(SimulationConfig(duration=10))).inputs.model(config).build(config)
    assert isinstance(source, NoInputs) and source.noise_std == 0.0


def test_loopback_port_tuples(config):
    interface = LoopbackInterface([("con1", 5, "con1", 2)], latency=40, noisePower=0.01)
    source = parse_simulation_request(request_for(SimulationConfig(duration=10, simulation_interface=interface)))
    loopback = source.inputs.model(config).build(config)
    assert isinstance(loopback, Loopback)
    assert loopback.latency_ns == 40 and loopback.noise_std == pytest.approx(0.1)
    loopback.record(PlayEvent("flux", "const", "const", 0, 40, None, 0.0, 0.0))
    seen = loopback.samples("con1", 2, 0, 100)
    assert np.flatnonzero(seen).tolist() == list(range(40, 80))
    assert loopback.samples("con1", 1, 0, 100) is None


def test_loopback_element_tuples_resolve_through_the_config(config):
    interface = LoopbackInterface([("qubit", "rr", 2)])
    spec = parse_simulation_request(request_for(SimulationConfig(duration=10, simulation_interface=interface)))
    loopback = spec.inputs.model(config).build(config)
    loopback.record(PlayEvent("qubit", "x", "iq_const", 0, 40, None, 0.0, 0.0))
    # input 2 of rr is out2 = con1 input 2; the sender's second port is its Q output (0 V for this pulse)
    assert loopback.samples("con1", 2, 0, 100) is not None
    bad = parse_simulation_request(request_for(SimulationConfig(
        duration=10, simulation_interface=LoopbackInterface([("qubit", "nowhere", 1)]))))
    with pytest.raises(ValueError, match="nowhere"):
        bad.inputs.model(config).build(config)


def test_raw_interface(config):
    interface = RawInterface([("con1", 1, [0.2] * 50)], noisePower=0.0)
    spec = parse_simulation_request(request_for(SimulationConfig(duration=10, simulation_interface=interface)))
    raw = spec.inputs.model(config).build(config)
    assert isinstance(raw, RawInputs)
    assert np.allclose(raw.samples("con1", 1, 40, 20), [0.2] * 10 + [0.0] * 10)


def test_samples_decode_with_the_client(config):
    events = [PlayEvent("flux", "const", "const", 100, 40, None, 0.0, 0.0),
              PlayEvent("qubit", "marked", "iq_marked", 200, 40, None, 50e6, 0.0)]
    samples = render(events, config, 4000)
    decoded = pulled(samples)
    assert np.array_equal(decoded.con1.analog["1"], samples.analog[("con1", 1)])
    assert np.array_equal(decoded.con1.analog["5"], samples.analog[("con1", 5)])
    assert np.array_equal(decoded.con1.analog["1-5"], samples.analog[("con1", 5)])
    assert np.array_equal(decoded.con1.digital["1"], samples.digital[("con1", 1)])
    assert set(decoded.con1.analog) == {f"1-{p}" for p in range(1, 11)}
    only_digital = pulled(samples, include_analog=False)
    assert not only_digital.con1.analog and len(only_digital.con1.digital) == 10


def test_samples_stream_as_one_header_then_data_chunks(config):
    samples = render([], config, 40_000)
    messages = list(decoded(stream_samples(samples.packed(), True, True)))
    assert messages[0].WhichOneof("body") == "header" and messages[0].header.countOfItems == 40_000
    assert all(m.WhichOneof("body") == "data" for m in messages[1:])
    sizes = [len(m.data.data) for m in messages[1:]]
    assert len(sizes) > 1 and max(sizes) <= CHUNK_BYTES and sum(sizes) == 40_000 * (10 * 8 + 10)


@pytest.mark.parametrize("size", [0, 1, 127, 128, 300_000, CHUNK_BYTES])
def test_data_messages_framed_by_hand_are_what_the_protobuf_library_serializes(size):
    """Chunks are framed without a message object (one copy fewer); the bytes must be the library's own."""
    chunk = bytes(range(256)) * (size // 256) + bytes(size % 256)
    framed = b"".join(list(stream_samples(PackedSamples.complete([("con1", "digital", 1)], size, chunk), True, True,
                                          job_id="sim-42"))[1:])
    Response = job_results_pb2.SimulatorSamplesResponse
    expected = Response(jobId="sim-42", ok=True, data=Response.Data(data=chunk)).SerializeToString() if size else b""
    assert framed == expected


def test_samples_stream_part_by_part_as_the_worker_hands_them_over(config):
    """A pull streams each part as soon as it arrives (the worker renders the next one meanwhile), and samples that
    fail midway end the stream with ok=false, which the client turns into QMSimulationError."""
    whole = render([PlayEvent("flux", "const", "const", 5, 40, None, 0.0, 0.0)], config, 1000).packed()
    data = whole.records().tobytes()
    arriving = PackedSamples(whole.columns, whole.rows)
    stream = decoded(stream_samples(arriving, True, True))
    assert next(stream).WhichOneof("body") == "header"
    received = []
    feeder = threading.Thread(target=lambda: [time.sleep(0.05), arriving.add(data[:1000])])
    feeder.start()
    received.append(next(stream).data.data)  # blocks until the part arrives
    feeder.join()
    assert received == [data[:1000]]
    arriving.add(data[1000:5000])
    arriving.add(memoryview(data)[5000:])
    assert b"".join([received[0], *(m.data.data for m in stream)]) == data
    assert arriving.records().tobytes() == data

    failing = PackedSamples(whole.columns, whole.rows)
    failing.add(data[:1000])
    failing.fail("the worker process running the job died (exit code -9)")
    messages = list(decoded(stream_samples(failing, True, True)))
    assert [m.ok for m in messages] == [True, True, False]  # any ok=false: the client's _pull_simulator_samples raises
    with pytest.raises(SamplesFailed, match="exit code -9"):
        failing.records()


def test_a_long_report_comes_in_time_order_with_its_state_at_each_pulse(config):
    """Pulses of many shapes interleave; each entry still carries the DC offset, frame and start of its own pulse."""
    events = []
    for k in range(3000):
        events.append(PlayEvent("drive", "const", "const", 100 * k, 100, None, 25e6, (0.1 * k) % 1,
                                frame=(0.05 * k) % 1))
        events.append(PlayEvent("qubit", "marked", "iq_marked", 100 * k + 50, 40, (0.5, 0, 0, 0.5), 50e6, 0.0))
    events.append(DcOffsetEvent("drive", "single", 149_990, 0.25))
    part = SimulatedResponsePart.FromString(build_simulated_part(build(events, config, 300_000)))
    report = WaveformReport.from_dict(extract_struct_value(part.waveformReport), "sim-1")
    drive = [w for w in report.analog_waveforms if w.element == "drive"]
    assert [w.timestamp for w in report.analog_waveforms] == sorted(w.timestamp for w in report.analog_waveforms)
    assert [w.timestamp for w in drive] == [100 * k for k in range(3000)]
    assert [w.current_dc_offset_by_port for w in (drive[1499], drive[1500])] == [{"6": 0.0}, {"6": 0.25}]
    assert drive[7].current_phase == pytest.approx(0.7)
    assert drive[7].current_frame == pytest.approx([np.cos(0.7 * np.pi), -np.sin(0.7 * np.pi),
                                                    np.sin(0.7 * np.pi), np.cos(0.7 * np.pi)])
    assert len(report.digital_waveforms) == 3000


def test_simulated_part_carries_a_report_the_client_parses(config):
    events = [PlayEvent("qubit", "marked", "iq_marked", 200, 40, (0.5, 0, 0, 0.5), 50e6, 0.25),
              PlayEvent("drive", "const", "const", 0, 400, None, 25e6, 0.0, chirp_rates=(1e4,)),
              PhaseResetEvent("qubit", 100),
              AcquisitionEvent("rr", 300, 40, "DemodIntegration")]
    part = SimulatedResponsePart.FromString(build_simulated_part(build(events, config, 1000)))
    assert not serialized_on_wire(part.analogOutputs) and not serialized_on_wire(part.digitalOutputs)
    report = WaveformReport.from_dict(extract_struct_value(part.waveformReport), "sim-1")
    iq = [w for w in report.analog_waveforms if w.element == "qubit"]
    assert [(w.ports, w.get_iq_association, w.timestamp, w.length) for w in iq] == [
        (["1"], "I", 200, 40), (["2"], "Q", 200, 40)]
    assert iq[0].current_correction_elements == [1.0, 0.1, 0.2, 0.9]
    chirped = next(w for w in report.analog_waveforms if w.element == "drive")
    assert chirped.chirp_info is not None and chirped.chirp_info["endFrequency"] == pytest.approx(25e6 + 1e4 * 400)
    digital = report.digital_waveforms
    assert [(d.ports, d.timestamp, d.length) for d in digital] == [(["1"], 200 + 12 - 4, 40 + 8)]
    (adc,) = report.adc_acquisitions
    assert adc.adc_ports == [1, 2] and adc.start_time == 300 and adc.end_time == 340
    assert [e.name for e in report.events] == ["phase_reset", "phase_reset"]
    assert report.to_string()
    nothing = SimulatedResponsePart.FromString(build_simulated_part(build([], config)))
    empty = WaveformReport.from_dict(extract_struct_value(nothing.waveformReport))
    assert empty.analog_waveforms == [] and empty.digital_waveforms == []
