"""Stream-processing semantics, checked on what the qm-qua client itself would decode.

Results are read back through `JobResults.read` and decoded with the client's own helpers
(`_standardize_slice`, `_create_results_array`, the fetchers' `_postprocess`), so each expected
value below is what a user's `fetch_all()` would return.
"""

from __future__ import annotations

import threading
import time
from io import BytesIO

import numpy as np
import pytest
from qm._stream_results._single_stream_fetchers._single_stream_multiple_results_fetcher import (
    SingleStreamMultipleResultFetcher,
)
from qm._stream_results._single_stream_fetchers._single_stream_single_result_fetcher import (
    SingleStreamSingleResultFetcher,
)
from qm._stream_results._utils import _create_results_array, _standardize_slice
from qm.api.models.jobs import JobNamedResultHeader

from qopemu.results.store import JobResults, ResultsMemoryError, STREAM_PROCESSING_ERROR
from qopemu.results.streams import StreamModelError, UnsupportedStreamOperation

R1 = ["@re", "0", "r1"]
R2 = ["@re", "0", "r2"]


def arr(*xs: object) -> list:
    return ["@array", *[x if isinstance(x, list) else str(x) for x in xs]]


def fetch(results: JobResults, name: str, flat: bool = False, item: int | slice = slice(0, None)):
    """What handle.fetch(item, flat_struct=flat) returns in the client."""
    h = results.header(name, flat)
    header = JobNamedResultHeader(h.count_so_far, h.simple_dtype, h.shape, h.has_dataloss, h.has_execution_errors)
    if h.is_single:
        item = 0
    span = _standardize_slice(name, item, header)
    data, count = BytesIO(), 0
    for n, chunk in results.read(name, span.start, span.stop - span.start):
        data.write(chunk)
        count += n
    array = _create_results_array(count, header, data)
    fetcher = SingleStreamSingleResultFetcher if h.is_single else SingleStreamMultipleResultFetcher
    return fetcher._postprocess(array, flat)


def run(model: list, feeds: dict[str, object], kinds: dict[str, str] | None = None, batch: int | None = None,
        **kwargs) -> JobResults:
    """A finished job whose streams received `feeds` (tag -> values), `batch` values per add_values call."""
    kinds = kinds if kinds is not None else {tag: "int" for tag in feeds}
    results = JobResults(model, stream_kinds=kinds, **kwargs)
    for tag, values in feeds.items():
        values = np.asarray(values)
        step = batch or max(1, len(values))
        for i in range(0, len(values), step):
            part = values[i : i + step]
            results.add_values(tag, kinds.get(tag, "fixed"), part, np.arange(i, i + len(part)) * 100)
    results.finish()
    return results


def values(results: JobResults, name: str) -> np.ndarray:
    return fetch(results, name, flat=True)


# ------------------------------------------------------------------ average, buffer


def test_running_average_of_0_to_100_is_50():
    r = run([["save", "avg", ["average", R1]], ["saveAll", "all", ["average", R1]]], {"r1": range(101)})
    assert fetch(r, "avg") == 50.0
    running = values(r, "all")
    assert running.dtype == np.float64 and len(running) == 101
    assert running[0] == 0.0 and running[1] == 0.5 and running[-1] == 50.0


@pytest.mark.parametrize("batch", [1, 7, None])
def test_buffer3_average_save_all_over_0_to_100(batch):
    r = run([["saveAll", "b", ["average", ["buffer", "3", R1]]]], {"r1": range(101)}, batch=batch)
    rows = fetch(r, "b")["value"]
    assert rows.shape == (33, 3)
    np.testing.assert_array_equal(rows[0], [0, 1, 2])
    np.testing.assert_array_equal(rows[-1], [48, 49, 50])


def test_buffer_multi_dim_item_shape():
    r = run([["saveAll", "b", ["buffer", "2", "3", R1]]], {"r1": range(13)})
    items = values(r, "b")
    assert items.shape == (2, 2, 3)
    np.testing.assert_array_equal(items[1], [[6, 7, 8], [9, 10, 11]])
    # buffer(n, l, k) == buffer(k).buffer(l).buffer(n)
    nested = run([["saveAll", "b", ["buffer", "2", ["buffer", "3", R1]]]], {"r1": range(13)})
    np.testing.assert_array_equal(values(nested, "b"), items)


def test_only_full_buffers_are_emitted():
    r = run([["saveAll", "b", ["buffer", "4", R1]]], {"r1": range(7)})
    assert r.header("b", False).count_so_far == 1


@pytest.mark.parametrize("batch", [1, 2, None])
@pytest.mark.parametrize(
    "length, skip, expected",
    [
        (3, 3, [[1, 2, 3], [4, 5, 6], [7, 8, 9]]),
        (3, 2, [[1, 2, 3], [3, 4, 5], [5, 6, 7], [7, 8, 9]]),
        (3, 5, [[1, 2, 3], [6, 7, 8]]),
    ],
)
def test_buffer_and_skip_docstring_examples(length, skip, expected, batch):
    model = [["saveAll", "e", ["bufferAndSkip", str(length), str(skip), R1]]]
    r = run(model, {"r1": [1, 2, 3, 4, 5, 6, 7, 8, 9, 0]}, batch=batch)
    np.testing.assert_array_equal(values(r, "e"), expected)


# ------------------------------------------------------------------ skip / take / flatten


@pytest.mark.parametrize("batch", [1, 3, None])
def test_skip_take_skip_last(batch):
    model = [
        ["saveAll", "skip", ["skip", "3", R1]],
        ["saveAll", "take", ["take", "4", R1]],
        ["saveAll", "last", ["skipLast", "2", R1]],
    ]
    r = run(model, {"r1": range(10)}, batch=batch)
    np.testing.assert_array_equal(values(r, "skip"), range(3, 10))
    np.testing.assert_array_equal(values(r, "take"), range(4))
    np.testing.assert_array_equal(values(r, "last"), range(8))


def test_skip_last_holds_back_while_running():
    r = JobResults([["saveAll", "x", ["skipLast", "2", R1]]], stream_kinds={"r1": "int"})
    r.add_values("r1", "int", np.arange(3), np.arange(3))
    assert r.header("x", False).count_so_far == 1
    r.add_values("r1", "int", np.arange(3, 5), np.arange(2))
    assert r.header("x", False).count_so_far == 3


def test_protocol_misc_chain():
    model = [["saveAll", "misc", ["flatten", ["skipLast", "1", ["take", "2", ["skip", "1",
                                                                            ["bufferAndSkip", "2", "1", R2]]]]]]]
    r = run(model, {"r2": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]}, kinds={"r2": "fixed"})
    # windows [1,2] [2,3] [3,4] ...; skip 1 -> [2,3] [3,4]; take 2; skipLast 1 -> [2,3]; flatten -> 2, 3
    np.testing.assert_array_equal(values(r, "misc"), [2.0, 3.0])


def test_flatten_of_buffers():
    r = run([["saveAll", "f", ["flatten", ["buffer", "2", "2", R1]]]], {"r1": range(9)})
    np.testing.assert_array_equal(values(r, "f"), range(8))


# ------------------------------------------------------------------ histogram


def test_histogram_save_and_running_rows():
    bins = arr(arr(0, 1), arr(2, 3))
    model = [["save", "hist", ["histogram", bins, R1]], ["saveAll", "rows", ["histogram", bins, R1]]]
    r = run(model, {"r1": range(101)}, batch=10)
    np.testing.assert_array_equal(fetch(r, "hist"), [2, 2])
    rows = values(r, "rows")
    assert rows.shape == (101, 2)
    np.testing.assert_array_equal(rows[:4], [[1, 0], [2, 0], [2, 1], [2, 2]])


def test_histogram_counts_every_element_of_array_items():
    r = run([["save", "h", ["histogram", arr(arr(0, 2.5), arr(3, 10)), ["buffer", "3", R1]]]], {"r1": range(6)})
    np.testing.assert_array_equal(fetch(r, "h"), [3, 3])


# ------------------------------------------------------------------ arithmetic and zip


def test_arithmetic_with_scalars_on_both_sides():
    model = [
        ["saveAll", "add", ["+", R1, "2"]],
        ["saveAll", "rsub", ["-", "10", R1]],
        ["saveAll", "div", ["/", R1, "2"]],
        ["saveAll", "fmul", ["*", "0.5", R1]],
    ]
    r = run(model, {"r1": [1, 2, 3]})
    add = values(r, "add")
    assert add.dtype == np.int64
    np.testing.assert_array_equal(add, [3, 4, 5])
    np.testing.assert_array_equal(values(r, "rsub"), [9, 8, 7])
    div = values(r, "div")
    assert div.dtype == np.float64
    np.testing.assert_array_equal(div, [0.5, 1.0, 1.5])
    np.testing.assert_array_equal(values(r, "fmul"), [0.5, 1.0, 1.5])


def test_arithmetic_with_arrays_and_buffers():
    model = [
        ["saveAll", "vec", ["*", ["buffer", "3", R1], arr(1, 10, 100)]],
        ["saveAll", "scalar_times_vec", ["+", R1, arr(0, 1)]],
    ]
    r = run(model, {"r1": range(6)})
    np.testing.assert_array_equal(values(r, "vec"), [[0, 10, 200], [3, 40, 500]])
    np.testing.assert_array_equal(values(r, "scalar_times_vec")[:2], [[0, 1], [1, 2]])


def test_stream_stream_pairs_items_and_stops_at_the_shorter():
    model = [["saveAll", "sum", ["+", R1, R2]], ["saveAll", "div", ["/", R1, R2]]]
    r = run(model, {"r1": [1, 2, 3, 4, 5], "r2": [10, 20, 30]})
    np.testing.assert_array_equal(values(r, "sum"), [11, 22, 33])
    np.testing.assert_array_equal(values(r, "div"), [0.1, 0.1, 0.1])


def test_protocol_arith_zip_example():
    expr = ["+", ["*", R2, "2"], R2]
    r = run([["saveAll", "arith", ["zip", R2, expr]]], {"r2": [1.0, 2.0]}, kinds={"r2": "fixed"})
    out = fetch(r, "arith")["value"]
    # (st * 2 + st).zip(st): the tuple is (left, right) although the wire has them reversed
    assert out.dtype.names == ("f0", "f1")
    np.testing.assert_array_equal(out["f0"], [3.0, 6.0])
    np.testing.assert_array_equal(out["f1"], [1.0, 2.0])


def test_zip_of_two_streams_waits_for_both():
    r = JobResults([["saveAll", "z", ["zip", R2, R1]]], stream_kinds={"r1": "int", "r2": "bool"})
    r.add_values("r1", "int", np.array([1, 2, 3]), np.zeros(3))
    assert r.header("z", False).count_so_far == 0
    r.add_values("r2", "bool", np.array([True, False]), np.zeros(2))
    out = values(r, "z")
    assert out.tolist() == [(1, True), (2, False)]


# ------------------------------------------------------------------ map functions


def test_map_average_with_and_without_axis():
    src = ["buffer", "2", "3", R1]
    model = [
        ["saveAll", "all", ["map", ["average"], src]],
        ["saveAll", "ax0", ["map", ["average", "0"], src]],
        ["saveAll", "ax1", ["map", ["average", "1"], src]],
        ["saveAll", "both", ["map", ["average", arr(0, 1)], src]],
    ]
    r = run(model, {"r1": range(6)})
    # no axis: the outermost axis of the item, as axis 0 (docs/results.md)
    np.testing.assert_array_equal(values(r, "all"), [1.5, 2.5, 3.5])
    # one item: the client returns it without the row axis
    np.testing.assert_array_equal(values(r, "ax0"), [1.5, 2.5, 3.5])
    np.testing.assert_array_equal(values(r, "ax1"), [1.0, 4.0])
    np.testing.assert_array_equal(values(r, "both"), [2.5])


def test_dot_smult_vmult_booleancast():
    buf = ["buffer", "3", R1]
    model = [
        ["saveAll", "dot", ["map", ["dot", arr(1, 2, 3)], buf]],
        ["saveAll", "smult", ["map", ["smult", "0.5"], buf]],
        ["saveAll", "vmult", ["map", ["vmult", arr(1, 0, -1)], buf]],
        ["saveAll", "bools", ["map", ["booleancast"], ["@re", "0", "b"]]],
    ]
    r = run(model, {"r1": range(6), "b": [True, False, True]}, kinds={"r1": "int", "b": "bool"})
    np.testing.assert_array_equal(values(r, "dot"), [8, 26])
    np.testing.assert_array_equal(values(r, "smult")[1], [1.5, 2.0, 2.5])
    np.testing.assert_array_equal(values(r, "vmult")[1], [3, 0, -5])
    bools = values(r, "bools")
    assert bools.dtype == np.int64 and bools.tolist() == [1, 0, 1]


def test_tuple_functions_on_zipped_streams():
    a, b = ["buffer", "3", R1], ["buffer", "3", R2]
    zipped = ["zip", b, a]  # a.zip(b)
    model = [
        ["saveAll", "tmult", ["map", ["tmult"], zipped]],
        ["saveAll", "tdot", ["map", ["dot"], zipped]],
        ["saveAll", "tconv", ["map", ["conv", "full"], zipped]],
        ["saveAll", "scalar_times_vector", ["map", ["tmult"], ["zip", b, R1]]],
    ]
    r = run(model, {"r1": [1, 2, 3], "r2": [4, 5, 6]})
    np.testing.assert_array_equal(values(r, "tmult"), [4, 10, 18])  # one item: no row axis
    np.testing.assert_array_equal(values(r, "tdot"), [32])
    np.testing.assert_allclose(values(r, "tconv"), np.convolve([1, 2, 3], [4, 5, 6]))
    np.testing.assert_array_equal(values(r, "scalar_times_vector"), [4, 5, 6])


@pytest.mark.parametrize("mode", ["", "full", "same", "valid"])
@pytest.mark.parametrize("kernel", [[1, -2, 0.5], [1, 2, 3, 4, 5, 6, 7]])
def test_convolution_matches_numpy(mode, kernel):
    r = run([["saveAll", "c", ["map", ["conv", mode, arr(*kernel)], ["buffer", "5", R1]]]], {"r1": range(10)})
    expected = [np.convolve(np.arange(i, i + 5), kernel, mode or "full") for i in (0, 5)]
    np.testing.assert_allclose(values(r, "c"), expected)


def test_fft_outputs():
    buf = ["buffer", "4", R1]
    model = [
        ["saveAll", "default", ["map", ["fft"], buf]],
        ["saveAll", "normal", ["map", ["fft", "normal"], buf]],
        ["saveAll", "abs", ["map", ["fft", "abs"], buf]],
        ["saveAll", "angle", ["map", ["fft", "angle"], buf]],
        ["saveAll", "pairs", ["map", ["fft", "abs"], ["buffer", "2", "2", R1]]],
    ]
    x = np.array([1, 0, -1, 0])
    r = run(model, {"r1": x})
    spectrum = np.fft.fft(x)
    # one item each: the client returns it without the row axis
    np.testing.assert_allclose(values(r, "default"), np.stack([spectrum.real, spectrum.imag], -1))
    np.testing.assert_allclose(values(r, "normal"), np.stack([spectrum.real, spectrum.imag], -1))
    np.testing.assert_allclose(values(r, "abs"), np.abs(spectrum))
    np.testing.assert_allclose(values(r, "angle"), np.angle(spectrum))
    # a buffer of (real, imaginary) pairs: 1 + 0j, -1 + 0j
    np.testing.assert_allclose(values(r, "pairs"), np.abs(np.fft.fft([1, -1])))


def test_demod_without_and_with_timestamps():
    freq = 1e8  # 10 ns period
    x = np.array([1.0, 2.0, 3.0, 4.0])
    t = np.arange(4.0)  # 1 ns apart when no timestamps are given
    expected = x * (1.0 * np.cos(2 * np.pi * freq * 1e-9 * t) + 0.5 * np.sin(2 * np.pi * freq * 1e-9 * t))
    model = [
        ["saveAll", "int", ["map", ["demod", "100000000.0", "1.0", "0.5", "1"], ["buffer", "4", R2]]],
        ["saveAll", "env", ["map", ["demod", "100000000.0", "1.0", "0.5", "0"], ["buffer", "4", R2]]],
        ["saveAll", "weights", ["map", ["demod", "100000000.0", arr(1, 1, 0, 0), "0.0"], ["buffer", "4", R2]]],
    ]
    r = run(model, {"r2": x}, kinds={"r2": "fixed"})
    np.testing.assert_allclose(values(r, "int"), [expected.sum()])
    np.testing.assert_allclose(values(r, "env"), expected)
    np.testing.assert_allclose(values(r, "weights"), [(x * np.cos(2 * np.pi * freq * 1e-9 * t))[:2].sum()])

    # with_timestamps(): the recorded times (ns) are used instead
    stamps = np.array([0, 250, 500, 750])
    r = JobResults([["saveAll", "ts", ["map", ["demod", "1000000.0", "1.0", "0.0"], ["buffer", "4", ["@re", "2", "r2"]]]]],
                   stream_kinds={"r2": "fixed"})
    r.add_values("r2", "fixed", x, stamps)
    np.testing.assert_allclose(values(r, "ts"), [(x * np.cos(2 * np.pi * 1e6 * 1e-9 * stamps)).sum()])


def test_real_and_image_of_real_data():
    r = run([["saveAll", "re", ["real", R2]], ["saveAll", "im", ["image", R2]]], {"r2": [1.5, -2.0]},
            kinds={"r2": "fixed"})
    np.testing.assert_array_equal(values(r, "re"), [1.5, -2.0])
    np.testing.assert_array_equal(values(r, "im"), [0.0, 0.0])


# ------------------------------------------------------------------ sources: timestamps, ADC, auto_reshape


def test_timestamps_modes_and_buffered_records():
    model = [
        ["saveAll", "ts", ["@re", "1", "r2"]],
        ["saveAll", "wts", ["@re", "2", "r2"]],
        ["saveAll", "buf", ["buffer", "2", ["@re", "2", "r2"]]],
        ["save", "last", ["@re", "2", "r2"]],
    ]
    r = JobResults(model, stream_kinds={"r2": "fixed"})
    r.add_values("r2", "fixed", np.array([0.5, 0.75, 1.0]), np.array([1000, 1250, 1500]))
    ts = fetch(r, "ts")
    assert ts["value"].tolist() == [1000, 1250, 1500]
    wts = fetch(r, "wts")
    assert wts.dtype.names == ("value", "timestamp")
    assert wts.tolist() == [(0.5, 1000), (0.75, 1250), (1.0, 1500)]
    buf = fetch(r, "buf")  # the client unwraps a single row of records to that row
    assert buf["timestamp"].tolist() == [1000, 1250]
    last = fetch(r, "last")
    assert (last["value"], last["timestamp"]) == (1.0, 1500)


def test_value_operators_drop_timestamps():
    r = run([["saveAll", "a", ["average", ["@re", "2", "r1"]]]], {"r1": [1, 3]})
    np.testing.assert_array_equal(values(r, "a"), [1.0, 2.0])


ADC1 = ["@macro_adc_trace", ["@macro_input", "1", ["@re", "0", "atr_r3"]]]


def test_adc_traces_inputs_and_samples():
    model = [
        ["saveAll", "adc1", ADC1],
        ["save", "avg2", ["average", ["@macro_adc_trace", ["@macro_input", "2", ["@re", "0", "atr_r3"]]]]],
        ["saveAll", "samples", ["@macro_input", "1", ["@re", "0", "atr_r3"]]],
        ["saveAll", "times", ["@macro_adc_trace", ["@macro_input", "1", ["@re", "1", "atr_r3"]]]],
        ["saveAll", "raw_input1", "auto", ["@macro_adc_trace", ["@macro_input", "1", ["@re", "2", "atr_r3"]]]],
    ]
    r = JobResults(model, stream_kinds={"atr_r3": "adc"}, adc_trace_lengths={"atr_r3": 4})
    traces = np.array([[100, -50, 0, 25], [1, 2, 3, 4]], np.int16)
    r.add_adc("atr_r3", 1, traces, np.array([0, 1000]))
    r.add_adc("atr_r3", 2, traces * 2, np.array([0, 1000]))
    adc1 = fetch(r, "adc1")["value"]
    assert adc1.dtype == np.int16
    np.testing.assert_array_equal(adc1, traces)
    np.testing.assert_array_equal(fetch(r, "avg2"), [101, -48, 3, 29])
    np.testing.assert_array_equal(values(r, "samples"), traces.reshape(-1))
    np.testing.assert_array_equal(values(r, "times")[1], [1000, 1001, 1002, 1003])  # one per sample, ns
    raw = fetch(r, "raw_input1")
    np.testing.assert_array_equal(raw["value"], traces)
    np.testing.assert_array_equal(raw["timestamp"][0], [0, 1, 2, 3])


def test_adc_trace_length_is_learnt_from_the_first_trace():
    r = JobResults([["saveAll", "adc1", ADC1]], stream_kinds={"atr_r3": "adc"})
    assert r.schema()[0].simple_dtype == '[["value", "<f8"]]'
    r.add_adc("atr_r3", 1, np.ones((2, 8), np.int16), np.zeros(2))
    assert r.header("adc1", True).shape == (8,)
    assert r.schema()[0].simple_dtype == '[["value", "<i2", {"__tuple__": true, "items": [8]}]]'


def test_changing_trace_length_stops_only_that_result():
    r = JobResults([["saveAll", "adc1", ADC1], ["saveAll", "n", R1]], stream_kinds={"atr_r3": "adc", "r1": "int"})
    r.add_adc("atr_r3", 1, np.ones((1, 8), np.int16), np.zeros(1))
    r.add_adc("atr_r3", 1, np.ones((1, 4), np.int16), np.zeros(1))
    r.add_values("r1", "int", np.arange(3), np.arange(3))
    assert r.header("adc1", False).count_so_far == 1
    assert r.header("adc1", False).has_execution_errors
    assert r.header("n", False).count_so_far == 3
    [error] = r.errors()
    assert error.code == STREAM_PROCESSING_ERROR and "adc1" in error.message


def test_auto_reshape_uses_the_loop_dimensions():
    model = [["saveAll", "reshaped", ["@macro_auto_reshape", R1]]]
    r = run(model, {"r1": range(300)}, auto_reshape_dims={"r1": [30, 10]})
    out = values(r, "reshaped")
    assert out.shape == (30, 10)
    with pytest.raises(UnsupportedStreamOperation, match="auto_reshape"):
        JobResults(model, stream_kinds={"r1": "int"})


def test_unknown_kind_defaults_to_fixed():
    r = run([["saveAll", "x", R1]], {"r1": [1, 2]}, kinds={})
    assert r.schema()[0].simple_dtype == '[["value", "<f8"]]'
    assert values(r, "x").dtype == np.float64


# ------------------------------------------------------------------ construction errors


@pytest.mark.parametrize(
    "expr, message",
    [
        (["frobnicate", R1], "frobnicate"),
        (["map", ["sqrt"], R1], "sqrt"),
        (["map", ["fft"], R1], "fft"),
        (["map", ["tmult"], R1], "tuple"),
        (["map", ["dot", arr(1, 2)], ["buffer", "3", R1]], "dot"),
        (["+", ["zip", R1, R1], "1"], "tuple"),
        (["@re", "7", "r1"], "timestamp mode"),
    ],
)
def test_impossible_pipelines_fail_at_construction(expr, message):
    with pytest.raises(UnsupportedStreamOperation, match=message):
        JobResults([["saveAll", "x", expr]], stream_kinds={"r1": "int"})


def test_malformed_models_and_duplicate_names():
    with pytest.raises(StreamModelError):
        JobResults([["saveAll", "x", ["buffer", "0", R1]]])
    with pytest.raises(StreamModelError, match="unique"):
        JobResults([["saveAll", "x", R1], ["save", "x", R1]])


# ------------------------------------------------------------------ the record


def test_reads_are_clipped_and_negative_offsets_count_from_the_end():
    r = run([["saveAll", "x", R1]], {"r1": range(10)})
    assert fetch(r, "x", flat=True, item=-1).tolist() == [9]
    assert fetch(r, "x", flat=True, item=slice(-2, None)).tolist() == [8, 9]
    assert fetch(r, "x", flat=True, item=slice(8, 20)).tolist() == [8, 9]
    assert list(r.read("x", 20, 5)) == []


def test_save_keeps_only_the_latest_item():
    r = JobResults([["save", "x", R1]], stream_kinds={"r1": "int"})
    assert fetch(r, "x") is None
    r.add_values("r1", "int", np.array([4, 5]), np.zeros(2))
    r.add_values("r1", "int", np.array([6]), np.zeros(1))
    assert r.header("x", False).count_so_far == 1
    assert fetch(r, "x") == 6


def test_done_closed_and_no_data_after_the_end():
    r = JobResults([["saveAll", "x", R1]], stream_kinds={"r1": "int"})
    assert r.state() == (False, False, False)
    r.finish()
    r.add_values("r1", "int", np.arange(3), np.zeros(3))
    assert r.state() == (True, False, False) and r.header("x", False).count_so_far == 0
    r2 = JobResults([["saveAll", "x", R1]])
    r2.close()
    assert r2.state() == (False, True, False)


def test_memory_cap_raises_and_keeps_the_record_readable():
    r = JobResults([["saveAll", "x", R1]], memory_cap_bytes=1000, stream_kinds={"r1": "int"})
    r.add_values("r1", "int", np.arange(100), np.zeros(100))  # 800 bytes
    with pytest.raises(ResultsMemoryError, match="1600 bytes.*1000"):
        r.add_values("r1", "int", np.arange(100), np.zeros(100))
    r.close()
    assert len(values(r, "x")) == 200


def test_tags_not_in_the_model_are_ignored_and_errors_are_listed():
    r = JobResults([["saveAll", "x", R1]], stream_kinds={"r1": "int"})
    r.add_values("nobody", "int", np.arange(3), np.zeros(3))
    r.add_error(12, "overflow", "warning")
    assert not r.header("x", False).has_execution_errors
    r.add_error(13, "boom")
    assert r.header("x", False).has_execution_errors
    assert [(e.code, e.severity) for e in r.errors()] == [(12, "warning"), (13, "error")]
    with pytest.raises(KeyError):
        r.header("y", False)


def test_readers_run_while_the_producer_feeds():
    r = JobResults([["saveAll", "x", R1], ["save", "avg", ["average", R1]]], stream_kinds={"r1": "int"})
    seen: list[int] = []

    def reader() -> None:
        while not r.state()[0]:
            time.sleep(0.001)
            n = r.header("x", False).count_so_far
            got = fetch(r, "x", flat=True, item=slice(0, n))
            assert len(got) == n and (got == np.arange(n)).all()
            seen.append(n)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for i in range(0, 200_000, 1000):
        r.add_values("r1", "int", np.arange(i, i + 1000), np.zeros(1000))
    r.finish()
    for t in threads:
        t.join(10)
    assert seen and max(seen) <= 200_000
    assert fetch(r, "avg") == pytest.approx(99_999.5)
    assert r.header("x", False).count_so_far == 200_000
