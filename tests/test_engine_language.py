"""Engine: variables, expressions, fixed-point arithmetic, control flow, saves, library functions."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
from qm.qua import (
    Cast, Math, Random, Util, advance_input_stream, assign, declare, declare_input_stream, declare_stream,
    else_, elif_, fixed, for_, for_each_, if_, infinite_loop_, pause, program, save, strict_timing_, switch_,
    case_, default_, while_, IO1, IO2, play, stream_processing,
)

from qopemu.engine import fixed as fx
from qopemu.engine.compiler import CompileError
from qopemu.engine.runtime import QuaRuntimeError, run
from qopemu.engine.compiler import compile_program
from engine_support import RecordingHost, SilentInputs, compile_qua, make_config

warnings.filterwarnings("ignore", category=DeprecationWarning)


def execute(prog, host=None, **kw):
    host = host or RecordingHost()
    summary = run(compile_qua(prog), host, SilentInputs(), **kw)
    return host, summary


def test_fixed_point_rules():
    assert fx.wrap(2**31) == -(2**31)
    assert fx.fixed_to_float(fx.fixed_from_float(9.0)) == -7.0  # docs: 9.0 -> -7.0
    assert fx.fixed_to_float(fx.fixed_from_float(100.0)) == 4.0
    assert fx.fixed_to_float(fx.fixed_from_float(8.0)) == -8.0
    assert fx.fixed_to_int(fx.fixed_from_float(-0.5)) == -1  # floor
    assert fx.msb(5, False) == 2 - 28 and fx.msb(fx.fixed_from_float(0.1), True) == -4
    assert fx.msb(0, True) == -28 and fx.msb(0, False) == 0


def test_int_wraps_and_for_loop_with_float_bound():
    with program() as prog:
        n = declare(int)
        big = declare(int, value=2**31 - 1)
        st = declare_stream()
        with for_(n, 0, n < 1e1, n + 1):  # the n_avg = 1e4 idiom
            save(n, st)
        assign(big, big + 1)
        save(big, "big")
    host, summary = execute(prog)
    assert host.saved["r1"] == list(range(10))
    assert host.saved["r2"] == [-(2**31)]


def test_fixed_sweep_matches_numpy():
    with program() as prog:
        a = declare(fixed)
        b = declare(fixed)
        st = declare_stream()
        st2 = declare_stream()
        with for_(a, -1.0, a < 1.0, a + 0.01):
            assign(b, a * a * 0.5 - a / 3 + 0.125)
            save(a, st)
            save(b, st2)
    host, _ = execute(prog)
    a = np.array(host.saved["r1"])
    assert len(a) == 200
    np.testing.assert_allclose(a, -1.0 + 0.01 * np.arange(200), atol=1e-4)
    np.testing.assert_allclose(host.saved["r2"], a * a * 0.5 - a / 3 + 0.125, atol=1e-6)


def test_mixed_int_fixed_and_casts():
    with program() as prog:
        n = declare(int, value=7)
        x = declare(fixed, value=0.75)
        r = declare(fixed)
        i = declare(int)
        b = declare(bool)
        assign(r, 0.25 * n)
        save(r, "a")
        assign(i, Cast.mul_int_by_fixed(n, x))
        save(i, "b")
        assign(r, Cast.mul_fixed_by_int(x, n))
        save(r, "c")
        assign(i, Cast.to_int(x + 2.5))
        save(i, "d")
        assign(r, Cast.to_fixed(n))
        save(r, "e")
        assign(b, Cast.to_bool(x))
        save(b, "f")
        assign(i, Cast.unsafe_cast_int(x))
        save(i, "g")
        assign(r, Cast.unsafe_cast_fixed(1))
        save(r, "h")
        assign(b, n > x)
        save(b, "i")
        assign(i, n / 2)
        save(i, "j")
        assign(r, Math.div(n, 2))
        save(r, "k")
        assign(i, (n << 2) + (n >> 1) + (n & 3) + (n | 8) + (n ^ 1))
        save(i, "l")
        assign(r, x / 4)
        save(r, "m")
    host, _ = execute(prog)
    values = [v[0] for v in host.saved.values()]
    assert values == [1.75, 5, 5.25, 3, 7.0, True, 3 * 2**26, 2**-28, True, 3, 3.5,
                      28 + 3 + 3 + 15 + 6, 0.1875]


def test_branches_switch_and_while():
    with program() as prog:
        n = declare(int)
        k = declare(int)
        st = declare_stream()
        with for_(n, 0, n < 5, n + 1):
            with if_(n == 0):
                save(n, st)
            with elif_(n < 3):
                assign(k, 10 + n)
                save(k, st)
            with else_():
                assign(k, -n)
                save(k, st)
            with switch_(n):
                with case_(1):
                    save(100, "sw")
                with case_(4):
                    save(400, "sw")
                with default_():
                    save(-1, "sw")
        assign(k, 0)
        with while_(k < 3):
            assign(k, k + 1)
        save(k, "k")
    host, summary = execute(prog)
    assert host.saved["r1"] == [0, 11, 12, -3, -4]
    assert host.saved["r2"] == [-1, 100, -1, -1, 400]
    assert host.saved["r3"] == [3]
    assert summary.statements > 20


def test_arrays_for_each_and_vectors():
    with program() as prog:
        arr = declare(int, value=[3, 1, 4, 1, 5])
        f = declare(fixed, value=[0.5, -0.25, 0.125, 1.0, 0.0])
        v = declare(int)
        x = declare(fixed)
        st = declare_stream()
        with for_each_(v, arr):
            save(v, st)
        with for_each_((v, x), ([1, 2], [0.5, 1.5])):
            assign(x, v * x)
            save(x, "prod")
        assign(arr[2], arr[0] + arr[4])
        save(arr[2], "cell")
        for expression, tag in ((Math.sum(arr), "sum"), (Math.max(arr), "max"), (Math.argmin(f), "argmin")):
            assign(v, expression)
            save(v, tag)
        assign(x, Math.dot(f, f))
        save(x, "dot")
        assign(v, Math.dot(arr, arr))
        save(v, "idot")
    host, _ = execute(prog)
    assert host.saved["r1"] == [3, 1, 4, 1, 5]
    assert host.saved["r2"] == [0.5, 3.0]
    assert host.saved["r3"] == [8]
    assert host.saved["r4"] == [18] and host.saved["r5"] == [8]
    assert host.saved["r6"] == [1]
    assert host.saved["r7"] == [0.25 + 0.0625 + 0.015625 + 1.0]
    assert host.saved["r8"] == [9 + 1 + 64 + 1 + 25]


def test_library_math_and_util():
    with program() as prog:
        x = declare(fixed, value=0.3)
        n = declare(int, value=-6)
        k = declare(int)
        r = declare(fixed)
        assign(r, Math.sin2pi(x))
        save(r, "a")
        assign(r, Math.sqrt(x))
        save(r, "b")
        assign(r, Math.exp(-x))
        save(r, "c")
        assign(r, Math.atan2_2pi(x, 0.5))
        save(r, "d")
        for expression, tag in ((Math.abs(n), "e"), (Math.msb(n), "f"), (Util.cond(n < 0, 1, 2), "g")):
            assign(k, expression)
            save(k, tag)
        assign(r, Math.log2(x))
        save(r, "h")
    host, _ = execute(prog)
    got = [v[0] for v in host.saved.values()]
    expected = [np.sin(2 * np.pi * 0.3), np.sqrt(0.3), np.exp(-0.3), np.arctan2(0.3, 0.5) / (2 * np.pi), 6, 2 - 28, 1,
                np.log2(0.3)]
    np.testing.assert_allclose(got, expected, atol=1e-7)


def test_random_is_seeded_and_in_range():
    def make():
        with program() as prog:
            rng = Random(seed=1234)
            n = declare(int)
            st = declare_stream()
            st2 = declare_stream()
            k = declare(int)
            x = declare(fixed)
            with for_(n, 0, n < 50, n + 1):
                assign(k, rng.rand_int(10))
                assign(x, rng.rand_fixed())
                save(k, st)
                save(x, st2)
        return prog
    first, _ = execute(make())
    second, _ = execute(make())
    assert first.saved == second.saved
    assert all(0 <= v < 10 for v in first.saved["r1"]) and len(set(first.saved["r1"])) > 3
    assert all(0 <= v < 1 for v in first.saved["r2"])


def test_pause_input_streams_and_io():
    with program() as prog:
        s = declare_input_stream(int, name="cmd")
        arr = declare_input_stream(fixed, name="vec", size=3)
        x = declare(fixed)
        pause()
        advance_input_stream(s)
        advance_input_stream(arr)
        save(s, "s")
        save(arr[2], "v")
        assign(x, IO1)
        save(x, "io")
        assign(IO2, s + 1)
    host = RecordingHost(inputs={"input_stream_cmd": [42], "input_stream_vec": [0.5, 0.25, -1.0]}, io={1: 0.5, 2: 0})
    host, _ = execute(prog, host)
    assert host.pauses == 1
    assert host.saved["r1"] == [42] and host.saved["r2"] == [-1.0] and host.saved["r3"] == [0.5]
    assert host.io[2] == 43


def test_an_array_access_out_of_range_goes_on_and_is_reported_once_per_statement():
    with program() as prog:
        arr = declare(int, value=[1, 2, 3])
        flags = declare(bool, value=[True])
        i = declare(int)
        x = declare(int)
        b = declare(bool)
        with for_(i, 2, i < 6, i + 1):
            assign(arr[i], 7)  # arr[2] = 7, the writes to 3..5 are dropped
            assign(x, arr[i])  # 7, then 0, 0, 0
            save(x, "x")
        assign(b, flags[i])
        save(b, "b")
        save(arr[0], "first")
    host, _ = execute(prog)
    assert list(host.saved.values()) == [[7, 0, 0, 0], [False], [1]]
    assert [code for code, _ in host.errors] == [2001, 2001, 2001]
    assert "index 3 is out of range for array" in host.errors[0][1]
    assert "the value is not written" in host.errors[0][1]
    assert "the read gives 0" in host.errors[1][1]
    assert "the read gives False" in host.errors[2][1]


def test_runtime_errors_name_the_statement():
    with program() as prog2:
        i = declare(int, value=0)
        j = declare(int)
        assign(j, 4 / i)
    with pytest.raises(QuaRuntimeError, match="division by zero"):
        execute(prog2)


def test_compile_errors_are_collected():
    with program() as prog:
        arr = declare(int, size=3)
        assign(arr[7], 1)
        play("nope", "qubit")
        play("pi", "ghost")
    with pytest.raises(CompileError) as info:
        compile_qua(prog)
    messages = info.value.messages
    assert len(messages) == 3
    assert any("out of range" in m for m in messages)
    assert any("operation 'nope'" in m for m in messages)
    assert any("unknown element 'ghost'" in m for m in messages)
    print(messages)
    assert all("test_engine_language.py" in m for m in messages)  # each message carries the statement's loc


def test_infinite_loop_stops_at_horizon_and_pickles():
    with program() as prog:
        with infinite_loop_():
            with strict_timing_():
                play("cw", "qubit")
    compiled = compile_qua(prog)
    clone = pickle.loads(pickle.dumps(compiled))
    summary = run(clone, RecordingHost(), SilentInputs(), max_time_ns=10_000)
    assert 10_000 < summary.duration_ns <= 10_100


def test_program_metadata():
    with program() as prog:
        x = declare(fixed)
        b = declare(bool)
        st = declare_stream()
        play("arb", "qubit")
        save(x, st)
        save(b, "flag")
        with stream_processing():
            st.buffer(2).save_all("xs")
    compiled = compile_qua(prog)
    assert compiled.overridable_waveforms == {"arb_wf": 16}
    assert compiled.stream_kinds == {"r1": "fixed", "r2": "bool"}
    assert ["saveAll", "xs", ["buffer", "2", ["@re", "0", "r1"]]] in compiled.result_model


def test_input_stream_misuse_is_refused():
    # the client itself refuses this, so tamper with the message as another client could send it
    with program() as prog:
        x = declare_input_stream(int, name="x")
        advance_input_stream(x)
    pb = prog.qua_program
    pb.script.variables[0].isInputStream = False
    with pytest.raises(CompileError, match="not declared with declare_input_stream"):
        compile_program(pb, make_config())
