"""edge/errors.py: a refusal's reply is looked up by the exception's class, along its MRO."""

from __future__ import annotations

import pytest
from qm.exceptions import (QMConnectionError, QMFailedToGetQuantumMachineError, QmFailedToCloseQuantumMachineError,
                           QMRequestDataError, QMRequestError)

from configs import config
from qopemu.edge.errors import ERRORS, JOB_MANAGER, ReplyTable, answers, failed
from qopemu.platform.errors import JobNotFound, MachineNotFound, NotRunning, PhysicalRefused, Refused
from qopemu.qmconfig import ConfigProblem
from qm.grpc.qm.pb import errors_pb2, qm_manager_pb2


class Base(Exception):
    pass


class Derived(Base):
    pass


class Special(Derived):
    pass


TABLE = ReplyTable({Base: lambda exc, request: "base", Special: lambda exc, request: "special"})


def test_a_subclass_maps_like_its_nearest_listed_base():
    assert TABLE.lookup(Derived())(None, None) == "base"
    assert TABLE.lookup(Special())(None, None) == "special"
    assert TABLE.lookup(ValueError()) is None


def test_platform_refusals_take_their_own_entry_before_their_base():
    problem = ConfigProblem(message="port taken", group="physical", path="controllers")
    assert ERRORS.lookup(PhysicalRefused([problem]))(PhysicalRefused([problem]), None) == {
        "physicalValidationErrors": [qm_manager_pb2.PhysicalValidationMessage(message="port taken", group="physical",
                                                                             path="controllers")]}
    assert JOB_MANAGER.lookup(JobNotFound("j-1"))(JobNotFound("j-1"), None)["error"] == errors_pb2.MissingJobError
    assert JOB_MANAGER.lookup(NotRunning("x"))(NotRunning("x"), None)["error"] == \
        errors_pb2.InvalidJobExecutionStatusError


class Servicer:
    @answers(ERRORS, failed(qm_manager_pb2.CloseQuantumMachineResponse))
    def Close(self, request, context):
        raise request

    @answers(ERRORS, failed(qm_manager_pb2.CloseQuantumMachineResponse))
    def Stream(self, request, context):
        yield qm_manager_pb2.CloseQuantumMachineResponse(success=True)
        raise request


def test_a_listed_exception_becomes_the_failure_reply():
    reply = Servicer().Close(MachineNotFound("qm-9"), None)
    assert not reply.success
    assert [e.message for e in reply.errors] == ["quantum machine 'qm-9' is not open"]
    assert [r.success for r in Servicer().Stream(Refused("gone"), None)] == [True, False]


def test_an_unknown_exception_is_not_swallowed():
    with pytest.raises(KeyError, match="boom"):
        Servicer().Close(KeyError("boom"), None)
    with pytest.raises(KeyError, match="boom"):
        list(Servicer().Stream(KeyError("boom"), None))


# Through the real client: each reply style the tables serve reaches the user as the client's own exception, carrying
# the platform's message.

def test_a_closed_qm_is_refused_in_each_reply_style(qmm):
    qm = qmm.open_qm(config(), close_other_machines=False)
    qm.close()
    gone = f"quantum machine '{qm.id}' is not open"
    with pytest.raises(QMFailedToGetQuantumMachineError, match=f"^Failed to fetch quantum machine: {gone}$"):
        qmm.get_qm(qm.id)  # `errors` style, GetQuantumMachine
    with pytest.raises(QmFailedToCloseQuantumMachineError, match=f"^{gone}$"):
        qm.close()  # `errors` style, CloseQuantumMachine
    with pytest.raises(QMRequestDataError, match=f"^{gone}$"):
        qm.get_io1_value()  # `errors` style, RequestData
    with pytest.raises(QMRequestError, match=f"^Failed: {gone}$"):
        qm.set_io1_value(1)  # `errors` style, PerformQmRequest
    with pytest.raises(QMConnectionError, match=f"details: {gone}, status:  StatusCode.NOT_FOUND"):
        qm.get_running_job()  # status style
    with pytest.raises(QMConnectionError, match=f"details: {gone}, status:  StatusCode.NOT_FOUND"):
        qm.queue.count  # status style, GetPendingJobs
