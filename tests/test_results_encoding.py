"""The client's binary result format: byte-exact examples (a)-(d) of protocol §5.4, decoded by the
client's own code, and the JobResultsService driven by the client's own result API over gRPC."""

from __future__ import annotations

import json
from concurrent import futures
from io import BytesIO

import grpc
import numpy as np
import pytest
from qm._stream_results._streams_manager import StreamsManager
from qm._stream_results._utils import _create_results_array
from qm.api.job_result_api import JobResultServiceApi
from qm.api.models.capabilities import QopCaps, ServerCapabilities
from qm.api.models.jobs import JobNamedResultHeader, _parse_dtype
from qm.api.models.server_details import ConnectionDetails
from qm.grpc.qm.pb import job_results_pb2_grpc
from qm.utils.numpy_utils import _write_header

from qopemu.edge.job_results import JobResultsService
from qopemu.results import encoding
from qopemu.results.store import JobResults


def raw(results: JobResults, name: str, offset: int = 0, limit: int = 1 << 30) -> tuple[int, bytes]:
    chunks = list(results.read(name, offset, limit))
    return sum(c for c, _ in chunks), b"".join(d for _, d in chunks)


def client_decode(results: JobResults, name: str, flat: bool) -> np.ndarray:
    h = results.header(name, flat)
    count, data = raw(results, name)
    header = JobNamedResultHeader(count, h.simple_dtype, h.shape, False, False)
    return _create_results_array(count, header, BytesIO(data))


# ------------------------------------------------------------------ §5.4 worked examples


def test_a_save_all_of_three_ints():
    r = JobResults([["saveAll", "ints", ["@re", "0", "r1"]]], stream_kinds={"r1": "int"})
    r.add_values("r1", "int", np.array([7, 8, 9]), np.array([0, 4, 8]))
    [item] = r.schema()
    assert (item.name, item.simple_dtype, item.is_single, item.shape) == ("ints", '[["value", "<i8"]]', False, (1,))
    h = r.header("ints", False)
    assert (h.count_so_far, h.simple_dtype, h.shape, h.has_execution_errors) == (3, '[["value", "<i8"]]', (1,), False)
    flat = r.header("ints", True)
    assert (flat.simple_dtype, flat.shape) == ('"<i8"', (1,))
    assert raw(r, "ints") == (3, bytes.fromhex("0700000000000000" "0800000000000000" "0900000000000000"))
    assert raw(r, "ints", 1, 2) == (2, bytes.fromhex("0800000000000000" "0900000000000000"))
    decoded = client_decode(r, "ints", False)
    assert decoded.dtype == np.dtype([("value", "<i8")]) and decoded.tolist() == [(7,), (8,), (9,)]
    assert client_decode(r, "ints", True).tolist() == [7, 8, 9]


def test_b_buffer_average_save():
    r = JobResults([["save", "avg", ["average", ["buffer", "3", ["@re", "0", "r1"]]]]], stream_kinds={"r1": "fixed"})
    [item] = r.schema()
    assert item.simple_dtype == '[["value", "<f8", {"__tuple__": true, "items": [3]}]]'
    assert item.is_single and item.shape == (1,)
    r.add_values("r1", "fixed", np.array([1.0, 2.0, 3.0]), np.arange(3))
    assert raw(r, "avg")[1] == np.array([1.0, 2.0, 3.0]).tobytes()
    r.add_values("r1", "fixed", np.array([3.0, 4.0, 5.0]), np.arange(3))
    assert r.header("avg", False).count_so_far == 1
    assert (r.header("avg", True).simple_dtype, r.header("avg", True).shape) == ('"<f8"', (3,))
    assert raw(r, "avg") == (1, bytes.fromhex("0000000000000040" "0000000000000840" "0000000000001040"))
    assert client_decode(r, "avg", True).tolist() == [2.0, 3.0, 4.0]


def test_c_with_timestamps_save_all():
    r = JobResults([["saveAll", "wts", ["@re", "2", "r1"]]], stream_kinds={"r1": "fixed"})
    r.add_values("r1", "fixed", np.array([0.5, 0.75]), np.array([1000, 1250]))
    h = r.header("wts", False)
    assert (h.simple_dtype, h.shape, h.count_so_far) == ('[["value", [["value", "<f8"], ["timestamp", "<i8"]]]]', (1,), 2)
    flat = r.header("wts", True)
    assert (flat.simple_dtype, flat.shape) == ('[["value", "<f8"], ["timestamp", "<i8"]]', (1,))
    assert raw(r, "wts")[1] == bytes.fromhex(
        "000000000000e03f" "e803000000000000" "000000000000e83f" "e204000000000000"
    )
    assert client_decode(r, "wts", True).tolist() == [(0.5, 1000), (0.75, 1250)]


def test_d_adc_trace():
    model = [
        ["saveAll", "adc1", ["@macro_adc_trace", ["@macro_input", "1", ["@re", "0", "atr_r3"]]]],
        ["save", "a2", ["average", ["@macro_adc_trace", ["@macro_input", "2", ["@re", "0", "atr_r3"]]]]],
        ["saveAll", "raw_input1", "auto", ["@macro_adc_trace", ["@macro_input", "1", ["@re", "2", "atr_r7"]]]],
    ]
    r = JobResults(model, stream_kinds={"atr_r3": "adc", "atr_r7": "adc"},
                   adc_trace_lengths={"atr_r3": 4, "atr_r7": 4})
    schema = {item.name: item.simple_dtype for item in r.schema()}
    assert schema["adc1"] == '[["value", "<i2", {"__tuple__": true, "items": [4]}]]'
    assert schema["a2"] == '[["value", "<f8", {"__tuple__": true, "items": [4]}]]'
    assert schema["raw_input1"] == (
        '[["value", [["value", "<i2", {"__tuple__": true, "items": [4]}], '
        '["timestamp", "<i8", {"__tuple__": true, "items": [4]}]]]]'
    )
    traces = np.array([[100, -50, 0, 25], [1, 2, 3, 4]], np.int16)
    r.add_adc("atr_r3", 1, traces, np.array([0, 2000]))
    assert raw(r, "adc1") == (2, bytes.fromhex("6400ceff00001900" "0100020003000400"))
    assert (r.header("adc1", True).simple_dtype, r.header("adc1", True).shape) == ('"<i2"', (4,))
    decoded = client_decode(r, "adc1", False)
    assert decoded.dtype == np.dtype([("value", "<i2", (4,))])
    np.testing.assert_array_equal(decoded["value"], traces)
    np.testing.assert_array_equal(client_decode(r, "adc1", True), traces)


# ------------------------------------------------------------------ dtype JSON through the client's parser


@pytest.mark.parametrize(
    "dtype, shape",
    [
        (np.dtype("<i8"), ()),
        (np.dtype("|b1"), (5,)),
        (np.dtype("<f8"), (2, 3)),
        (np.dtype([("value", "<f8"), ("timestamp", "<i8")]), (4,)),
        (np.dtype([("f0", "<i8", (3,)), ("f1", [("value", "<f8"), ("timestamp", "<i8")])]), ()),
        (np.dtype(">f8"), (2,)),
    ],
)
def test_descriptions_decode_to_the_same_bytes(dtype, shape):
    items = np.zeros((3,) + shape, dtype)
    items.view(np.uint8)[...] = np.arange(items.nbytes, dtype=np.uint8).reshape(items.view(np.uint8).shape) % 251
    data = encoding.to_bytes(items)
    for flat in (False, True):
        header = JobNamedResultHeader(3, encoding.simple_dtype(dtype, shape, flat), tuple(encoding.wire_shape(shape, flat)),
                                      False, False)
        decoded = _create_results_array(3, header, BytesIO(data))
        assert decoded.tobytes() == data
        body = decoded if flat else decoded["value"]
        assert body.shape == (3,) + shape
        np.testing.assert_array_equal(body.astype(body.dtype.newbyteorder("=")), items)


def test_npy_header_as_the_client_writes_it():
    simple = encoding.simple_dtype(np.dtype("<i2"), (4,), flat=False)
    buffer = BytesIO()
    _write_header(buffer, (2,), _parse_dtype(simple))
    buffer.write(np.arange(8, dtype="<i2").tobytes())
    buffer.seek(0)
    loaded = np.load(buffer)
    assert loaded["value"].tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert json.loads(simple) == [["value", "<i2", {"__tuple__": True, "items": [4]}]]


# ------------------------------------------------------------------ the service, driven by the client's own API


@pytest.fixture
def service():
    jobs: dict[str, JobResults] = {}
    server = grpc.server(futures.ThreadPoolExecutor(4))
    job_results_pb2_grpc.add_JobResultsServiceServicer_to_server(JobResultsService(jobs.get), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    details = ConnectionDetails("127.0.0.1", port, timeout=10)

    def manager(job_id: str) -> StreamsManager:
        api = JobResultServiceApi(details, job_id)
        return StreamsManager(api, ServerCapabilities([QopCaps.job_streaming_state]), None)

    yield jobs, manager, details
    server.stop(None)


def test_client_fetches_through_the_service(service):
    jobs, manager, _ = service
    model = [
        ["saveAll", "n", ["@re", "0", "r1"]],
        ["save", "avg", ["average", ["buffer", "3", ["@re", "0", "r1"]]]],
        ["saveAll", "tag", ["@re", "2", "r2"]],
    ]
    r = jobs["job-1"] = JobResults(model, stream_kinds={"r1": "int", "r2": "fixed"})
    r.add_values("r1", "int", np.arange(1_000_000), np.arange(1_000_000))  # several 4 MB messages
    r.add_values("r2", "fixed", np.array([0.5, 0.75]), np.array([1000, 1250]))
    handles = manager("job-1")
    assert handles.is_processing()
    r.finish()
    assert handles.wait_for_all_values(5)
    n = handles.get("n")
    assert len(n) == 1_000_000
    np.testing.assert_array_equal(n.fetch_all()["value"], np.arange(1_000_000))
    assert n.fetch(-1)["value"].tolist() == [999_999]
    assert n.fetch(slice(-2, None), flat_struct=True).tolist() == [999_998, 999_999]
    np.testing.assert_array_equal(handles.get("avg").fetch_all(), [499_998, 499_999, 500_000])
    tag = handles.get("tag").fetch_all()
    assert tag.tolist() == [(0.5, 1000), (0.75, 1250)]
    assert handles.get("tag").numpy_dtype == [["value", [["value", "<f8"], ["timestamp", "<i8"]]]]


def test_errors_state_and_not_found(service):
    jobs, manager, details = service
    r = jobs["job-2"] = JobResults([["saveAll", "n", ["@re", "0", "r1"]]], stream_kinds={"r1": "int"})
    r.add_error(201, "overflow in assign", "warning")
    r.close()
    api = JobResultServiceApi(details, "job-2")
    [error] = api.get_job_errors()
    assert (error.errorCode, error.errorSeverity, error.message) == (201, 1, "overflow in assign")
    handles = manager("job-2")
    assert not handles.get("n").wait_for_all_values(5)  # closed, not done
    with pytest.raises(Exception, match="no result named 'missing'"):
        api.get_named_header("missing", False)
    with pytest.raises(Exception, match="job nope not found"):
        JobResultServiceApi(details, "nope").get_job_state()
