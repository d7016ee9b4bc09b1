"""QUA language constructs run through the real client, with exact values (issue: QUA engine, item 7).

The engine's own unit tests (test_engine_*.py) cover each construct in depth; these run a representative program per
construct end to end — queue, worker, stream processing, the client's decoding — and check what the user gets.
"""

from __future__ import annotations

import numpy as np
import pytest
from qm.qua import (Cast, Math, Util, assign, declare, declare_stream, else_, elif_, fixed, for_, for_each_, if_,
                    program, save, stream_processing, switch_, case_, default_, while_)

from configs import config


@pytest.fixture(scope="module")
def run(server):
    from qm import QuantumMachinesManager

    qmm = QuantumMachinesManager(server.host, server.port, connection_headers={"x-qop-user": "lang"})
    qm = qmm.open_qm(config(), close_other_machines=False)

    def execute(prog, *names):
        job = qm.queue.add(prog).wait_for_execution(timeout=30)
        assert job.result_handles.wait_for_all_values(timeout=30), job.execution_report()
        values = [job.result_handles.get(name).fetch_all(flat_struct=True) for name in names]
        return values[0] if len(values) == 1 else values

    yield execute
    qm.close()


def test_nested_loops_and_counters(run):
    with program() as prog:
        i = declare(int)
        j = declare(int)
        total = declare(int, value=0)
        st = declare_stream()
        with for_(i, 0, i < 10, i + 1):
            with for_(j, i, j < 10, j + 2):
                assign(total, total + j)
        k = declare(int, value=1)
        with while_(k < 1000):
            assign(k, k * 3)
        save(total, st)
        save(k, st)
        with stream_processing():
            st.save_all("out")
    total = sum(j for i in range(10) for j in range(i, 10, 2))
    assert run(prog, "out").tolist() == [total, 2187]


def test_fixed_point_sweep_matches_numpy(run):
    with program() as prog:
        a = declare(fixed)
        y = declare(fixed)
        st = declare_stream()
        with for_(a, -1.0, a < 1.0, a + 0.01):
            assign(y, a * a * 0.5 - a * 0.25 + 0.125)
            save(y, st)
        with stream_processing():
            st.save_all("y")
    values = run(prog, "y")
    a = np.arange(-1.0, 1.0 - 1e-9, 0.01)
    assert values.shape == a.shape
    assert values == pytest.approx(a * a * 0.5 - a * 0.25 + 0.125, abs=1e-4)


def test_int32_wraps_and_fixed_range(run):
    with program() as prog:
        big = declare(int, value=2**31 - 1)
        f = declare(fixed, value=7.5)
        st_i = declare_stream()
        st_f = declare_stream()
        assign(big, big + 1)
        assign(f, f + 1.0)
        save(big, st_i)
        save(f, st_f)
        with stream_processing():
            st_i.save("i")
            st_f.save("f")
    wrapped, fixed_value = run(prog, "i", "f")
    assert wrapped == -(2**31)
    assert fixed_value == pytest.approx(-7.5)  # 4.28 wraps modulo 16


def test_branches_switch_and_booleans(run):
    with program() as prog:
        i = declare(int)
        label = declare(int)
        flag = declare(bool)
        st = declare_stream()
        flags = declare_stream()
        with for_(i, 0, i < 6, i + 1):
            with if_(i < 2):
                assign(label, 10)
            with elif_(i == 3):
                assign(label, 30)
            with else_():
                with switch_(i):
                    with case_(2):
                        assign(label, 20)
                    with case_(4):
                        assign(label, 40)
                    with default_():
                        assign(label, -1)
            assign(flag, (i > 2) & (i < 5))
            save(label, st)
            save(flag, flags)
        with stream_processing():
            st.save_all("labels")
            flags.boolean_to_int().save_all("flags")
    labels, flags = run(prog, "labels", "flags")
    assert labels.tolist() == [10, 10, 20, 30, 40, -1]
    assert flags.tolist() == [0, 0, 0, 1, 1, 0]


def test_arrays_and_for_each(run):
    with program() as prog:
        values = declare(fixed, value=[0.5, -0.25, 0.125, 1.0])
        squares = declare(fixed, size=4)
        i = declare(int)
        x = declare(fixed)
        st = declare_stream()
        with for_(i, 0, i < values.length(), i + 1):
            assign(squares[i], values[i] * values[i])
        with for_each_(x, [0.1, 0.2, 0.3]):
            save(x, st)
        with for_(i, 0, i < 4, i + 1):
            save(squares[i], st)
        with stream_processing():
            st.save_all("out")
    assert run(prog, "out") == pytest.approx([0.1, 0.2, 0.3, 0.25, 0.0625, 0.015625, 1.0], abs=1e-7)


def test_library_functions(run):
    with program() as prog:
        out = declare(fixed)
        n = declare(int)
        arr = declare(fixed, value=[0.25, -0.5, 0.75])
        st = declare_stream()
        ist = declare_stream()
        for expression in (Math.sqrt(0.25), Math.abs(-0.375), Math.cos2pi(0.125), Math.sin2pi(0.25),
                           Math.exp(-1.0), Math.ln(2.0), Math.div(1.0, 4.0), Math.max(arr), Math.min(arr),
                           Math.sum(arr), Util.cond(n > -1, 0.5, -0.5), Cast.mul_fixed_by_int(0.125, 3), Math.pow(2.0, 2.5)):
            assign(out, expression)
            save(out, st)
        for expression in (Cast.to_int(2.75), Math.argmax(arr), Math.msb(1000),
                           Cast.unsafe_cast_int(0.5)):
            assign(n, expression)
            save(n, ist)
        with stream_processing():
            st.save_all("fixed")
            ist.save_all("ints")
    fixed_values, int_values = run(prog, "fixed", "ints")
    expected = [0.5, 0.375, np.cos(np.pi / 4), 1.0, np.exp(-1.0), np.log(2.0), 0.25, 0.75, -0.5, 0.5, 0.5, 0.375, 2**2.5]
    assert fixed_values == pytest.approx(expected, abs=1e-4)
    assert int_values.tolist() == [2, 2, 9 - 28, 2**27]  # unsafe_cast_int: the raw 4.28 word of 0.5


def test_float_literals_where_ints_are_wanted_are_cast_like_the_platform(run, server):
    from qm import QuantumMachinesManager, SimulationConfig
    from qm.qua import play, update_frequency, wait

    with program() as prog:
        i = declare(int)
        j = declare(int)
        st = declare_stream()
        assign(i, 100.0)
        assign(j, 2.5e3)
        save(i, st)
        save(j, st)
        with stream_processing():
            st.save_all("ints")
    assert run(prog, "ints").tolist() == [100, 2500]

    with program() as timing:
        play("cw", "resonator", duration=25.0)  # 25 clock cycles
        wait(1e2, "resonator")  # 100 clock cycles
        update_frequency("resonator", 4e6)
        play("cw", "resonator")
    qmm = QuantumMachinesManager(server.host, server.port)
    job = qmm.simulate(config(), timing, SimulationConfig(duration=400, include_analog_waveforms=True))
    plays = sorted(job.get_simulated_waveform_report().analog_waveforms, key=lambda w: w.timestamp)
    assert [p.length for p in plays] == [100, 100]
    assert plays[1].timestamp - plays[0].timestamp == 100 + 400
    assert plays[1].current_intermediate_frequency == pytest.approx(4e6)


def test_math_msb_counts_from_the_fixed_point_for_ints_and_fixeds(run):
    """Math.msb is floor(log2|x|) on a fixed and floor(log2|x|) - 28 on an int: one rule on the 32-bit word, the
    one py-qua-tools' VoltageGateSequence relies on (`1 << (29 + Math.msb(n))`). msb(0): 0 for an int, -28 for a
    fixed, as documented. The sign does not matter."""
    with program() as prog:
        n = declare(int)
        x = declare(fixed)
        k = declare(int)
        ints = declare_stream()
        fixeds = declare_stream()
        for value in (0, 1, -1, 2, 3, 1024, 1023, -1024, 2012, 2**30, -(2**31)):
            assign(n, value)
            assign(k, Math.msb(n))
            save(k, ints)
        for value in (0.0, 1.0, -1.0, 0.5, 0.1, 4.0, 7.5, -8.0, 2**-28):
            assign(x, value)
            assign(k, Math.msb(x))
            save(k, fixeds)
        assign(n, 2012)
        assign(k, 1 << (29 + Math.msb(n)))  # VoltageGateSequence's compensation length: the power of 2 above n
        save(k, ints)
        with stream_processing():
            ints.save_all("ints")
            fixeds.save_all("fixeds")
    int_values, fixed_values = run(prog, "ints", "fixeds")
    assert int_values.tolist() == [0, -28, -28, -27, -27, -18, -19, -18, -18, 2, 3, 2048]
    assert fixed_values.tolist() == [-28, 0, 0, -1, -4, 2, 2, 3, -28]
