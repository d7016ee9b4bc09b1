"""Several QMs on one platform, through the real client (issue: server foundation)."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from qm import SimulationConfig
from qm.exceptions import FailedToExecuteJobException, OpenQmException
from qm.qua import play, program

from configs import config, opx1000_config, single_element_config


def test_handshake_version_and_controllers(qmm):
    version = qmm.version()
    assert "qopemu" in version.gateway
    assert version.QOP == "2.6.0"
    assert [c.name for c in qmm.get_controllers()] == ["con1"]


def test_two_qms_share_a_port_marked_shareable_in_both(connect):
    alice, bob = connect("alice"), connect("bob")
    qm1 = alice.open_qm(single_element_config({1: {"offset": 0.0, "shareable": True}, 2: {}}),
                        close_other_machines=False)
    qm2 = bob.open_qm(single_element_config({1: {"offset": 0.0, "shareable": True}, 3: {}}),
                      close_other_machines=False)
    assert set(alice.list_open_qms()) == {qm1.id, qm2.id}
    # the shareable flag survives the round trip to another user
    fetched = bob.get_qm(qm1.id).get_config()
    assert fetched["controllers"]["con1"]["analog_outputs"][1]["shareable"] is True


@pytest.mark.parametrize("first_shareable, second_shareable", [(True, False), (False, True), (False, False)])
def test_port_conflict_refused_naming_port_and_holder(connect, first_shareable, second_shareable):
    qmm = connect("alice")
    holder = qmm.open_qm(single_element_config({1: {"shareable": first_shareable}}), close_other_machines=False)
    with pytest.raises(OpenQmException) as refused:
        qmm.open_qm(single_element_config({1: {"shareable": second_shareable}}), close_other_machines=False)
    text = str(refused.value)
    assert "con1" in text and "analog_outputs" in text and holder.id in text
    assert "cannot be used because it isn't shareable in other QM." in text  # the platform's sentence, full stop
    assert qmm.list_open_qms() == [holder.id]


def test_shared_input_ports_and_digital_ports_follow_the_same_rule(connect):
    qmm = connect("alice")
    first = single_element_config({1: {}}, analog_inputs={1: {"shareable": True}})
    second = single_element_config({2: {}}, analog_inputs={1: {"shareable": True}})
    third = single_element_config({3: {}}, analog_inputs={1: {}})
    qmm.open_qm(first, close_other_machines=False)
    qmm.open_qm(second, close_other_machines=False)
    with pytest.raises(OpenQmException, match="analog_inputs"):
        qmm.open_qm(third, close_other_machines=False)
    digital_a = single_element_config({4: {}})
    digital_a["controllers"]["con1"]["digital_outputs"] = {5: {}}
    digital_b = single_element_config({5: {}})
    digital_b["controllers"]["con1"]["digital_outputs"] = {5: {}}
    qmm.open_qm(digital_a, close_other_machines=False)
    with pytest.raises(OpenQmException, match="digital_outputs"):
        qmm.open_qm(digital_b, close_other_machines=False)


def test_close_other_machines_true_closes_only_the_blocking_qms(connect):
    qmm = connect("alice")
    blocking = qmm.open_qm(single_element_config({1: {}}), close_other_machines=False)
    bystander = qmm.open_qm(single_element_config({2: {}}), close_other_machines=False)
    new = qmm.open_qm(single_element_config({1: {}}), close_other_machines=True)
    assert set(qmm.list_open_qms()) == {bystander.id, new.id}
    assert blocking.id not in qmm.list_open_qms()


def test_default_close_behaves_like_true(connect):
    qmm = connect("alice")
    first = qmm.open_qm(single_element_config({1: {}}))
    second = qmm.open_qm(single_element_config({1: {}}))
    assert qmm.list_open_qms() == [second.id]
    assert first.id != second.id


def test_cores_are_counted_across_qms(connect):
    qmm = connect("alice")
    # 9 IQ elements = 18 cores: the whole OPX+
    qmm.open_qm(single_element_config({1: {}, 2: {}}, n_elements=9, iq=True), close_other_machines=False)
    with pytest.raises(OpenQmException) as refused:
        qmm.open_qm(single_element_config({3: {}}), close_other_machines=False)
    assert "needs 1 cores, 0 of 18 are free" in str(refused.value)


def test_elements_naming_one_core_share_it(connect):
    qmm = connect("alice")
    qmm.open_qm(single_element_config({1: {}}, n_elements=17), close_other_machines=False)  # 17 cores
    # 5 elements on one named core take a single core: fits in the 18th
    qmm.open_qm(single_element_config({2: {}}, n_elements=5, core="shared"), close_other_machines=False)
    with pytest.raises(OpenQmException, match="needs 1 cores, 0 of 18 are free"):
        qmm.open_qm(single_element_config({3: {}}), close_other_machines=False)


def test_too_many_cores_in_one_config(connect):
    qmm = connect("alice")
    with pytest.raises(OpenQmException, match="needs 20 cores, 18 of 18 are free"):
        qmm.open_qm(single_element_config({1: {}, 2: {}}, n_elements=10, iq=True), close_other_machines=False)


def test_config_errors_are_all_reported_with_their_key_paths(qmm):
    bad = config()
    bad["controllers"]["con1"]["analog_outputs"][11] = {"offset": 0.0}  # OPX+ has 10
    bad["elements"]["qubit"]["operations"]["ghost"] = "no_such_pulse"
    bad["pulses"]["pi_pulse"]["length"] = 44  # the arbitrary waveform has 40 samples
    bad["pulses"]["readout_pulse"]["integration_weights"]["cos"] = "no_such_weights"
    with pytest.raises(OpenQmException) as refused:
        qmm.open_qm(bad, close_other_machines=False)
    text = str(refused.value)
    for path in ("controllers.con1.analog_outputs.11", "elements.qubit.operations.ghost",
                 "pulses.pi_pulse.waveforms.I", "pulses.readout_pulse.integration_weights.cos"):
        assert path in text, f"{path} missing from: {text}"
    assert qmm.list_open_qms() == []


def test_weights_shorter_than_an_unused_pulse_open_with_a_warning(qmm, caplog):
    """QM's configs give a long readout pulse the readout's weights without ever measuring with it; the platform
    opens such a QM. qopemu opens it too and says what the mismatch means in an open warning."""
    cfg = config()
    cfg["pulses"]["long_readout_pulse"] = dict(cfg["pulses"]["readout_pulse"], length=2000,
                                               integration_weights={"cos": "cosine_weights"})
    cfg["elements"]["resonator"]["operations"]["long_readout"] = "long_readout_pulse"
    with caplog.at_level("WARNING", logger="qm"):
        qm = qmm.open_qm(cfg, close_other_machines=False)
    assert qmm.list_open_qms() == [qm.id]
    warnings = [r.getMessage() for r in caplog.records if "Open QM ended with warning" in r.getMessage()]
    assert warnings == [
        "Open QM ended with warning 0: pulses.long_readout_pulse.integration_weights.cos: integration weights "
        "'cosine_weights' last 1000 ns but the pulse is 2000 ns long; a measurement with them integrates 1000 ns"
    ]


def test_unknown_controller_is_refused(qmm):
    bad = single_element_config({1: {}})
    bad["controllers"]["con2"] = {"analog_outputs": {1: {}}}
    with pytest.raises(OpenQmException, match="controller 'con2' does not exist"):
        qmm.open_qm(bad, close_other_machines=False)


def test_close_frees_ports_and_close_all_frees_everything(connect):
    qmm = connect("alice")
    qm = qmm.open_qm(single_element_config({1: {}}), close_other_machines=False)
    qm.close()
    again = qmm.open_qm(single_element_config({1: {}}), close_other_machines=False)
    qmm.open_qm(single_element_config({2: {}}), close_other_machines=False)
    qmm.close_all_qms()
    assert qmm.list_open_qms() == []
    assert again.id not in qmm.list_open_qms()
    qmm.open_qm(single_element_config({1: {}, 2: {}}, n_elements=9, iq=True), close_other_machines=False)


def test_another_client_process_sees_the_same_qm(server, connect):
    qmm = connect("alice")
    qm = qmm.open_qm(single_element_config({1: {"offset": 0.25, "shareable": True}}), close_other_machines=False)
    script = textwrap.dedent(f"""
        from qm import QuantumMachinesManager
        qmm = QuantumMachinesManager("{server.host}", {server.port}, connection_headers={{"x-qop-user": "bob"}})
        ids = qmm.list_open_qms()
        qm = qmm.get_qm(ids[0])
        port = qm.get_config()["controllers"]["con1"]["analog_outputs"][1]
        print(qm.id, port["offset"], port["shareable"])
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1].split() == [qm.id, "0.25", "True"]  # the client logs to stdout first


def test_qm_session_waits_for_a_held_port_and_opens_once_it_is_freed(server, connect):
    """py-qua-tools' qm_session, the tool labs use to share an OPX, retries open_qm while the refusal says the port
    "cannot be used because it isn't shareable in other QM." (polling every 0.2 s) and raises on anything else."""
    holder = connect("alice").open_qm(single_element_config({1: {}}), close_other_machines=False)
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from configs import single_element_config
        from qm import QuantumMachinesManager
        from qualang_tools.multi_user import qm_session
        qmm = QuantumMachinesManager("{server.host}", {server.port}, connection_headers={{"x-qop-user": "bob"}})
        with qm_session(qmm, single_element_config({{1: {{}}}}), timeout=30) as qm:
            print("opened", qm.id, flush=True)
    """)
    waiter = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    try:
        seen = []
        for line in waiter.stdout:  # the client logs to stdout; qm_session says once that it waits
            seen.append(line)
            if "QOP is busy" in line:
                break
        else:
            pytest.fail("qm_session never waited:\n" + "".join(seen))
        time.sleep(0.6)  # three more polls, all refused
        assert waiter.poll() is None and "opened" not in "".join(seen)
        assert connect("carol").list_open_qms() == [holder.id]
        holder.close()
        freed = time.monotonic()
        opened = next((line for line in waiter.stdout if line.startswith("opened")), None)
        waited = time.monotonic() - freed
        assert opened is not None, "qm_session did not open the QM once the port was free"
        assert waited < 1.0  # one 0.2 s poll after the port is free, plus the open itself
        assert opened.split()[1] != holder.id
        assert waiter.wait(30) == 0
    finally:
        waiter.kill()
        waiter.wait()


OPX1000_REFUSAL = ("this config is for an OPX1000: controller 'con1' declares FEMs (1: LF-FEM, 2: MW-FEM); elements "
                   "'qubit', 'resonator' use MW-FEM ports (MWInput / MWOutput); elements address ports as "
                   "(controller, FEM, port): 'qubit' ('con1', 2, 1), 'resonator' ('con1', 2, 2). This qopemu server "
                   "emulates an OPX+ (QOP 2.x) only.")


def test_an_opx1000_config_is_refused_with_one_error_saying_the_server_emulates_an_opx_plus(qmm):
    with pytest.raises(OpenQmException) as refused:
        qmm.open_qm(opx1000_config(), close_other_machines=False)
    errors = refused.value.config_validation_formatted_errors + refused.value.physical_validation_formatted_errors
    assert len(errors) == 1
    assert errors[0].startswith('CONFIG ERROR in key "controllers" [controller] : ' + OPX1000_REFUSAL)
    assert qmm.list_open_qms() == []


def test_an_opx1000_config_is_refused_by_simulate_with_the_same_error(qmm, caplog):
    with program() as prog:
        play("const", "flux")
        play("x180", "qubit")
    with caplog.at_level(logging.ERROR, logger="qm"), pytest.raises(FailedToExecuteJobException):
        qmm.simulate(opx1000_config(), prog, SimulationConfig(duration=100))
    # The client raises without text and logs the server's messages: one, this one
    server_messages = [r.getMessage() for r in caplog.records if r.name.startswith("qm")
                       and r.levelno == logging.ERROR and not r.getMessage().startswith("Job ")]
    assert len(server_messages) == 1 and server_messages[0].startswith(OPX1000_REFUSAL)
