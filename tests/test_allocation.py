"""Unit tests of port and core allocation (platform/machines.py), without a server."""

from __future__ import annotations

import threading

import pytest
from qm.api.models.capabilities import QopCaps, ServerCapabilities
from qm.program import load_config

from configs import single_element_config
from qopemu import qmconfig
from qopemu.platform.errors import MachineNotFound, PhysicalRefused
from qopemu.platform.hardware import Hardware
from qopemu.platform.machines import Machines
from qopemu.settings import ControllerSpec

CAPS = ServerCapabilities(QopCaps.qop2_caps())


def model(config: dict) -> qmconfig.QmConfig:
    return qmconfig.from_pb(load_config(config, capabilities=CAPS))


@pytest.fixture
def machines():
    closed: list[str] = []
    registry = Machines(Hardware((ControllerSpec(),)), on_open=lambda qm: None, on_close=lambda qm: closed.append(qm.id))
    registry.closed = closed
    return registry


def test_shareable_needs_both_sides(machines):
    machines.open(model(single_element_config({1: {"shareable": True}})), False)
    machines.open(model(single_element_config({1: {"shareable": True}})), False)
    with pytest.raises(PhysicalRefused) as refused:
        machines.open(model(single_element_config({1: {"shareable": False}})), False)
    problems = refused.value.problems
    assert len(problems) == 2  # one per holder
    assert all(p.path == "controllers.con1.analog_outputs.1" and p.group == "port-conflict" for p in problems)


def test_core_accounting_and_release(machines):
    first, _ = machines.open(model(single_element_config({1: {}}, n_elements=10)), False)
    with pytest.raises(PhysicalRefused) as refused:
        machines.open(model(single_element_config({2: {}}, n_elements=9)), False)
    assert "needs 9 cores, 8 of 18 are free" in refused.value.problems[0].message
    machines.close(first.id)
    machines.open(model(single_element_config({2: {}}, n_elements=9)), False)


def test_close_others_closes_port_holders_then_core_users_oldest_first(machines):
    old, _ = machines.open(model(single_element_config({1: {}}, n_elements=8)), False)
    mid, _ = machines.open(model(single_element_config({2: {}}, n_elements=8)), False)
    young, _ = machines.open(model(single_element_config({3: {}}, n_elements=1)), False)
    # needs port 3 (held by young) and 10 cores (1 free + 1 from young + 8 from old)
    new, closed = machines.open(model(single_element_config({3: {}}, n_elements=10)), True)
    assert closed == [young.id, old.id]
    assert machines.list() == [mid.id, new.id]


def test_concurrent_opens_never_double_allocate(machines):
    winners, errors = [], []

    def open_port_one():
        try:
            winners.append(machines.open(model(single_element_config({1: {}})), False)[0])
        except PhysicalRefused as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_port_one) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1 and len(errors) == 15


def test_unknown_qm(machines):
    with pytest.raises(MachineNotFound, match="qm-nope"):
        machines.close("qm-nope")
