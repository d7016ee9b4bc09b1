"""Results through the real client: stream processing, fetching, retention (issue: results)."""

from __future__ import annotations

import numpy as np
import pytest
from qm import QuantumMachinesManager
from qm.qua import Cast, assign, declare, declare_stream, fixed, for_, program, save, stream_processing

import qopemu
from configs import config
from qualang_tools.results import fetching_tool
from programs import paused
from qopemu.settings import Settings


def _count_to_100():
    with program() as prog:
        n = declare(int)
        st = declare_stream()
        with for_(n, 0, n <= 100, n + 1):
            save(n, st)
        with stream_processing():
            st.average().save("avg")
            st.buffer(3).average().save_all("buffered")
            st.save_all("all")
            st.buffer(10).save("last_row")
            (st * 2 + 1).save_all("arith")
            st.with_timestamps().save_all("stamped")
    return prog


@pytest.fixture
def finished(connect):
    qm = connect("alice").open_qm(config(), close_other_machines=False)
    job = qm.queue.add(_count_to_100()).wait_for_execution()
    assert job.result_handles.wait_for_all_values(timeout=30)
    return qm, job


def test_documented_stream_semantics(finished):
    _, job = finished
    handles = job.result_handles
    assert sorted(handles.keys()) == ["all", "arith", "avg", "buffered", "last_row", "stamped"]
    assert handles.get("avg").fetch_all() == pytest.approx(50.0)
    buffered = handles.get("buffered").fetch_all()
    assert buffered.shape == (33,)
    assert buffered["value"][-1].tolist() == [48.0, 49.0, 50.0]
    assert handles.get("last_row").fetch_all().tolist() == list(range(90, 100))
    assert handles.get("arith").fetch_all()["value"].tolist() == [2 * n + 1 for n in range(101)]
    stamped = handles.get("stamped").fetch_all()
    assert stamped["value"].tolist() == list(range(101))
    assert np.all(np.diff(stamped["timestamp"]) >= 0)


def test_fetch_by_index_slice_and_counts(finished):
    _, job = finished
    handle = job.result_handles.get("all")
    assert handle.count_so_far() == len(handle) == 101
    assert handle.fetch(5)["value"].tolist() == [5]
    assert handle.fetch(slice(10, 13))["value"].tolist() == [10, 11, 12]
    assert handle.fetch(-1)["value"].tolist() == [100]
    assert handle.fetch_all(flat_struct=True).tolist() == list(range(101))
    handle.wait_for_values(101, timeout=1)  # raises TimeoutError when short
    assert not handle.has_dataloss()
    assert not job.result_handles.is_processing()


def test_save_all_reaches_every_public_call_as_the_platforms_records(finished):
    """Non-flat `save_all` results are records with one field `value` whichever call reads them, as on the platform
    (docs/results.md lists the evidence); only flat_struct=True gives plain arrays. py-qua-tools >= 0.21.1
    `fetching_tool` reads through `fetch_results` and no longer strips `value`, so it hands scripts these records."""
    _, job = finished
    handles = job.result_handles
    ints = np.dtype([("value", "<i8")])
    assert handles.get("all").fetch_all().dtype == ints
    fetched = handles.fetch_results(stream_names=["all", "buffered", "avg"])
    assert fetched["all"].dtype == ints
    assert fetched["buffered"].dtype == np.dtype([("value", "<f8", (3,))]) and fetched["buffered"].shape == (33,)
    assert fetched["avg"] == pytest.approx(50.0)
    all_values, average = fetching_tool(job, ["all", "avg"]).fetch_all()
    assert all_values.dtype == ints and all_values["value"].tolist() == list(range(101))
    assert average == pytest.approx(50.0)
    assert handles.get("all").fetch_all(flat_struct=True).dtype == np.dtype("<i8")
    # with_timestamps(): the client unwraps the server's {value: {value, timestamp}} records; one row comes back bare
    stamped = handles.get("stamped")
    rows = stamped.fetch(slice(3, 5))
    assert rows.dtype.names == ("value", "timestamp") and rows["value"].tolist() == [3, 4]
    one = stamped.fetch(slice(3, 4))
    assert isinstance(one, np.void) and one["value"] == 3 and one["timestamp"] == rows["timestamp"][0]


def test_results_outlive_the_job_until_cleared(finished, connect):
    qm, job = finished
    other = connect("bob")
    later = other.get_job_result_handles(job.id)
    assert later.get("avg").fetch_all() == pytest.approx(50.0)
    assert qm.get_job(job.id).result_handles.get("all").count_so_far() == 101
    other.clear_all_job_results()
    with pytest.raises(Exception, match="not found"):
        other.get_job_result_handles(job.id).get("avg").fetch_all()


def test_values_are_live_while_the_job_runs(connect):
    qm = connect("alice").open_qm(config(), close_other_machines=False)
    with program() as prog:
        from qm.qua import pause

        x = declare(fixed, value=0.5)
        st = declare_stream()
        save(x, st)
        pause()
        with stream_processing():
            st.save_all("x")
    job = paused(qm.queue.add(prog))
    handles = job.result_handles
    assert handles.is_processing()
    handles.get("x").wait_for_values(1, timeout=10)
    assert handles.get("x").fetch_all()["value"].tolist() == [0.5]
    job.resume()
    assert handles.wait_for_all_values(timeout=10)
    assert not handles.is_processing()


def test_a_job_over_the_results_memory_cap_fails_and_others_go_on():
    with qopemu.Server(Settings(results_memory_cap_mb=1)) as server:
        qmm = QuantumMachinesManager(server.host, server.port)
        qm = qmm.open_qm(config(), close_other_machines=False)
        with program() as big:
            n = declare(int)
            st = declare_stream()
            with for_(n, 0, n < 1_000_000, n + 1):
                save(n, st)
            with stream_processing():
                st.save_all("n")
        job = qm.queue.add(big).wait_for_execution()
        assert job.result_handles.wait_for_all_values(timeout=60) is False
        assert job.status == "error"
        assert any("bytes" in str(e) for e in job.execution_report().errors())
        small = qm.queue.add(_count_to_100()).wait_for_execution()
        assert small.result_handles.wait_for_all_values(timeout=30)
        assert small.result_handles.get("avg").fetch_all() == pytest.approx(50.0)
        qmm.close_all_qms()


def test_operators_decode_in_the_client(connect):
    from qm.qua import FUNCTIONS

    qm = connect("alice").open_qm(config(), close_other_machines=False)
    with program() as prog:
        n = declare(int)
        x = declare(fixed)
        flag = declare(bool)
        st = declare_stream()
        xs = declare_stream()
        flags = declare_stream()
        with for_(n, 0, n < 8, n + 1):
            save(n, st)
            assign(x, Cast.mul_fixed_by_int(0.125, n))
            save(x, xs)
            assign(flag, n > 3)
            save(flag, flags)
        with stream_processing():
            st.buffer(2, 2).save_all("grid")
            st.histogram([[0, 3], [4, 7]]).save("hist")
            xs.buffer(8).map(FUNCTIONS.fft("abs")).save("spectrum")
            st.zip(xs).save_all("pairs")
            flags.boolean_to_int().buffer(8).save("bits")
            st.buffer(4).map(FUNCTIONS.average()).save_all("means")
            st.skip(2).take(3).save_all("window")
    job = qm.queue.add(prog).wait_for_execution()
    assert job.result_handles.wait_for_all_values(timeout=30)
    get = lambda name, **kw: job.result_handles.get(name).fetch_all(**kw)  # noqa: E731
    assert get("grid")["value"].tolist() == [[[0, 1], [2, 3]], [[4, 5], [6, 7]]]
    assert np.asarray(get("hist")).ravel().tolist() == [4, 4]
    assert get("spectrum") == pytest.approx(np.abs(np.fft.fft(np.arange(8) * 0.125)), abs=1e-6)
    pairs = get("pairs")["value"]  # records of (item of st, item of xs)
    assert pairs.tolist() == [(n, n * 0.125) for n in range(8)]
    assert get("bits").tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert get("means")["value"].tolist() == [1.5, 5.5]
    assert get("window")["value"].tolist() == [2, 3, 4]


def test_map_average_without_axis_averages_the_outermost_axis(connect):
    """`.buffer(nf).buffer(n_avg).map(FUNCTIONS.average())`, as QM's example scripts write it, gives nf values
    per item: the mean over the n_avg rows. A vector averages to a scalar, a scalar stays itself."""
    from qm.qua import FUNCTIONS

    qm = connect("alice").open_qm(config(), close_other_machines=False)
    with program() as prog:
        n = declare(int)
        st = declare_stream()
        with for_(n, 0, n < 24, n + 1):
            save(n, st)
        with stream_processing():
            st.buffer(3).buffer(4).map(FUNCTIONS.average()).save_all("rows")
            st.buffer(2, 3, 4).map(FUNCTIONS.average()).save("cube")
            st.buffer(4).map(FUNCTIONS.average()).save_all("vector")
            st.map(FUNCTIONS.average()).take(2).save_all("scalar")
    job = qm.queue.add(prog).wait_for_execution()
    assert job.result_handles.wait_for_all_values(timeout=30)
    get = lambda name: job.result_handles.get(name).fetch_all()  # noqa: E731
    # items of 12 values n0..n0+11 as 4 rows of 3: column means are n0 + 4.5, 5.5, 6.5
    assert get("rows")["value"].tolist() == [[4.5, 5.5, 6.5], [16.5, 17.5, 18.5]]
    assert get("cube").tolist() == (np.arange(24).reshape(2, 3, 4).mean(axis=0)).tolist()
    assert get("vector")["value"].tolist() == [1.5, 5.5, 9.5, 13.5, 17.5, 21.5]
    assert get("scalar")["value"].tolist() == [0.0, 1.0]
