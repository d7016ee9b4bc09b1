"""The `qm.grpc.frontend.Frontend` service: QMs, the queue, job control, simulation.

Translation only: requests become calls on `platform.qop.Qop`, domain results and errors become the response
fields the client reads (shared/protocol/QOP2-PROTOCOL.md §2–4 and §7). Failures travel in the response's own
failure fields wherever it has them, so the client raises its own exception carrying our message.
"""

from __future__ import annotations

import logging

from google.protobuf import empty_pb2, wrappers_pb2
from qm.grpc.qm.pb import frontend_pb2, frontend_pb2_grpc, inc_qm_api_pb2, qm_manager_pb2

from qopemu import __version__, qmconfig
from qopemu.edge.errors import BARE, COMPILER, ERRORS, NOT_SUPPORTED, STATUS, aborted, answers, failed
from qopemu.edge.identity import Identity
from qopemu.platform.errors import Refused
from qopemu.platform.jobs import Job, JobStatus
from qopemu.platform.qop import Qop
from qopemu.platform.queue import JobFilter

log = logging.getLogger(__name__)


def job_status(job: Job, position: int | None) -> frontend_pb2.JobExecutionStatus:
    """A job's state as the client's `JobExecutionStatus` oneof; every time field it can read is filled."""
    status = frontend_pb2.JobExecutionStatus()
    state = job.snapshot()
    if state.status is JobStatus.PENDING:
        part = status.pending
        part.positionInQueue = position or 0
    elif state.status is JobStatus.LOADING:
        part = status.loading
    elif state.status is JobStatus.RUNNING:
        part = status.running
        part.timeStarted.FromDatetime(state.time_started)
    elif state.status is JobStatus.COMPLETED:
        part = status.completed
        part.timeStarted.FromDatetime(state.time_started)
        part.timeCompleted.FromDatetime(state.time_ended)
    elif state.status is JobStatus.CANCELED:
        part = status.canceled
        part.timeCanceled.FromDatetime(state.time_ended)
    else:
        status.error.addedBy = job.added_by
        status.error.errorMessages.extend(state.error_messages)
        return status
    part.addedBy = job.added_by
    part.timeAdded.FromDatetime(state.time_added)
    return status


def job_filter(request: frontend_pb2.JobQueryParams) -> JobFilter:
    """An unset field means 'no filter' (protocol §4.1); the client only ever sets `.value` of a matcher."""
    return JobFilter(
        job_id=request.jobId.value if request.HasField("jobId") else None,
        user=request.userId.value if request.HasField("userId") else None,
        position=request.position.value if request.HasField("position") else None,
    )


def _at_start(request) -> bool:
    return request.HasField("queuePosition") and request.queuePosition.WhichOneof("position") == "start"


class FrontendService(frontend_pb2_grpc.FrontendServicer):
    def __init__(self, qop: Qop, identity: Identity):
        self._qop = qop
        self._identity = identity

    # -- platform -----------------------------------------------------------------------------------------------

    def GetVersion(self, request, context):
        return wrappers_pb2.StringValue(value=__version__)

    def HealthCheck(self, request, context):
        return frontend_pb2.HealthCheckResponse(ok=True, message=[f"qopemu {__version__}: "
                                                                  f"{self._qop.describe()}"])

    def GetControllers(self, request, context):
        return qm_manager_pb2.GetControllersResponse(
            controllers=[qm_manager_pb2.Controller(name=name) for name in self._qop.controller_names()]
        )

    def ClearAllJobResults(self, request, context):
        self._qop.clear_results()
        return empty_pb2.Empty()

    def ResetDataProcessing(self, request, context):
        return frontend_pb2.ResetDataProcessingResponse()

    # -- machines -----------------------------------------------------------------------------------------------

    @answers(ERRORS, failed(qm_manager_pb2.OpenQuantumMachineResponse))
    def OpenQuantumMachine(self, request, context):
        # The 1.4 client sends `always` for close_other_machines=True and for its default, `never` for False.
        # keep_dc_offsets_when_closing changes nothing here: a closed QM's outputs are not emulated.
        close_others = request.WhichOneof("oneOfCloseOtherMachines") != "never"
        qm, closed = self._qop.open_qm(request.config, close_others)
        log.info("%s opened %s", self._identity.caller(context), qm.id)
        messages = [f"closed quantum machine {qm_id} (close_other_machines=True)" for qm_id in closed]
        messages += qmconfig.notes(qm.config)
        warnings = [qm_manager_pb2.OpenQmWarning(code=0, message=message) for message in messages]
        return qm_manager_pb2.OpenQuantumMachineResponse(machineID=qm.id, success=True, openQmWarnings=warnings)

    def ListOpenQuantumMachines(self, request, context):
        return qm_manager_pb2.ListOpenQuantumMachinesResponse(machineIDs=self._qop.qm_ids())

    @answers(ERRORS, failed(qm_manager_pb2.GetQuantumMachineResponse))
    def GetQuantumMachine(self, request, context):
        qm = self._qop.get_qm(request.machineID)
        return qm_manager_pb2.GetQuantumMachineResponse(machineID=qm.id, config=qm.config.pb, success=True)

    @answers(ERRORS, failed(qm_manager_pb2.CloseQuantumMachineResponse))
    def CloseQuantumMachine(self, request, context):
        self._qop.close_qm(request.machineID)
        return qm_manager_pb2.CloseQuantumMachineResponse(success=True)

    def CloseAllQuantumMachines(self, request, context):
        self._qop.close_all_qms()
        return qm_manager_pb2.CloseAllQuantumMachinesResponse(success=True)

    # -- queue --------------------------------------------------------------------------------------------------

    @answers(COMPILER, failed(frontend_pb2.AddToQueueResponse, "ok"))
    def AddToQueue(self, request, context):
        user = self._identity.caller(context)
        try:
            job = self._qop.add(request.quantumMachineId, request.highLevelProgram, user, _at_start(request))
        except Refused as exc:  # logged, then answered by the COMPILER table
            for message in exc.messages:
                log.info("AddToQueue refused for %s: %s", user, message)
            raise
        return frontend_pb2.AddToQueueResponse(ok=True, jobId=job.id)

    @answers(COMPILER, failed(frontend_pb2.CompileResponse, "ok"))
    def Compile(self, request, context):
        program_id = self._qop.compile(request.quantumMachineId, request.highLevelProgram)
        return frontend_pb2.CompileResponse(ok=True, programId=program_id)

    @answers(ERRORS, failed(frontend_pb2.AddCompiledToQueueResponse, "ok"))
    def AddCompiledToQueue(self, request, context):
        user = self._identity.caller(context)
        overrides = {name: list(w.samples) for name, w in request.executionOverrides.waveforms.items()}
        job = self._qop.add_compiled(request.quantumMachineId, request.programId, user, overrides, _at_start(request))
        return frontend_pb2.AddCompiledToQueueResponse(ok=True, jobId=job.id)

    @answers(STATUS, aborted)
    def GetPendingJobs(self, request, context):
        views = self._qop.pending(request.quantumMachineId, job_filter(request))
        response = frontend_pb2.GetPendingJobsResponse()
        for view in views:
            entry = response.pendingJobs[view.job.id]
            entry.positionInQueue = view.position
            entry.timeAdded.FromDatetime(view.job.time_added)
            entry.addedBy = view.job.added_by
        return response

    @answers(STATUS, aborted)
    def RemovePendingJobs(self, request, context):
        removed = self._qop.remove(request.quantumMachineId, job_filter(request))
        return frontend_pb2.RemovePendingJobsResponse(numbersOfJobsRemoved=removed)

    @answers(STATUS, aborted)
    def GetRunningJob(self, request, context):
        job = self._qop.running_job(request.machineID)
        return qm_manager_pb2.GetRunningJobResponse(machineID=request.machineID, jobId=job.id if job else "")

    # -- jobs ---------------------------------------------------------------------------------------------------

    def GetJobExecutionStatus(self, request, context):
        job = self._qop.find_job(request.jobId)
        if job is None:
            status = frontend_pb2.JobExecutionStatus()
            status.unknown.SetInParent()
            return frontend_pb2.GetJobExecutionStatusResponse(status=status)
        position = self._qop.position(job) if job.status is JobStatus.PENDING else None
        return frontend_pb2.GetJobExecutionStatusResponse(status=job_status(job, position))

    @answers(BARE, failed(frontend_pb2.HaltResponse, "ok"))
    def Halt(self, request, context):
        return frontend_pb2.HaltResponse(ok=self._qop.halt(request.jobId))

    @answers(STATUS, aborted)
    def Resume(self, request, context):
        self._qop.resume(request.jobId)  # an unknown job: NOT_FOUND
        return frontend_pb2.ResumeResponse()

    @answers(STATUS, aborted)
    def PausedStatus(self, request, context):
        paused = self._qop.is_paused(request.jobId)
        return frontend_pb2.PausedStatusResponse(ok=True, isPaused=paused)

    def IsJobRunning(self, request, context):
        return frontend_pb2.IsJobRunningResponse(jobId=request.jobId, isRunning=self._qop.is_running(request.jobId))

    def IsJobAcquiringData(self, request, context):
        status = (frontend_pb2.IsJobAcquiringDataResponse.HAS_DATA_TO_ACQUIRE if self._qop.is_running(request.jobId)
                  else frontend_pb2.IsJobAcquiringDataResponse.ACQUIRE_STOPPED)
        return frontend_pb2.IsJobAcquiringDataResponse(jobId=request.jobId, acquiringStatus=status)

    # -- QM-level runtime requests ------------------------------------------------------------------------------

    @answers(ERRORS, failed(inc_qm_api_pb2.HighQmApiResponse, "ok"))
    def PerformQmRequest(self, request, context):
        which = request.WhichOneof("api_oneof")
        if which == "setIOValues":
            values = {}
            for entry in request.setIOValues.ioValueSetData:
                kind = entry.WhichOneof("oneof_IO_type")
                values[entry.io_number] = getattr(entry, kind) if kind else 0
            self._qop.set_io(request.quantumMachineId, values)
        else:
            change = _config_change(request, which)
            if change is None:
                raise Refused(NOT_SUPPORTED + str(which))
            self._qop.change_config(request.quantumMachineId, change)
        return inc_qm_api_pb2.HighQmApiResponse(ok=True)

    @answers(ERRORS, failed(frontend_pb2.QmDataResponse))
    def RequestData(self, request, context):
        response = frontend_pb2.QmDataResponse(success=True)
        for io_request in request.io_value_Request:
            values = self._qop.get_io(io_request.quantumMachineId)
            value = values.get(io_request.io_number, 0)
            item = response.io_value_response.add()
            item.request.CopyFrom(io_request)
            # One register seen three ways, as the hardware does; int_value is uint32 on the wire.
            item.values.int_value = int(value) & 0xFFFFFFFF
            item.values.double_value = float(value)
            item.values.boolean_value = bool(value)
        return response

    # -- simulation ---------------------------------------------------------------------------------------------

    # Simulate and PullSimulatorSamples: edge/simulation.py simulation_rpc_handler serves them, pre-serialized.



def _config_change(request, which: str):
    """The QM config change a HighQmApiRequest asks for, as a function of the config; None if not supported."""
    body = getattr(request, which) if which else None
    if which == "setOutputDcOffset":
        # The client sends the same number as I and Q; the port name says which input of the element it is for.
        value = body.Q if body.qe.port == "Q" else body.I
        return lambda c: qmconfig.with_output_dc_offset(c, body.qe.qe, body.qe.port, value)
    if which == "setInputDcOffset":
        return lambda c: qmconfig.with_input_dc_offset(c, body.qe.qe, body.qe.port, body.offset)
    if which == "setFrequency":
        return lambda c: qmconfig.with_intermediate_frequency(c, body.qe, body.value)
    if which == "setDigitalRoute":
        route = body.WhichOneof("oneof_set_digital_route")
        port = getattr(body, route)
        return lambda c: qmconfig.with_digital_route(c, port.qe, port.port, **{route: body.value})
    if which == "setCorrection":
        mixer = body.mixer
        frequency = mixer.intermediateFrequencyDouble or mixer.intermediateFrequency
        frequency = -frequency if mixer.frequencyNegative else frequency
        lo = mixer.loFrequencyDouble or mixer.loFrequency
        m = body.correction
        return lambda c: qmconfig.with_mixer_correction(c, mixer.mixer, frequency, lo, (m.v00, m.v01, m.v10, m.v11))
    if which == "setOutputFilterTaps":
        taps = body.filter
        return lambda c: qmconfig.with_output_filter(c, body.qe.qe, body.qe.port, list(taps.feedforward),
                                                     list(taps.feedback))
    if which in ("setDigitalInputThreshold", "setDigitalInputDeadtime", "setDigitalInputPolarity"):
        port = body.digitalPort
        if which == "setDigitalInputThreshold":
            setting = {"threshold": body.threshold}
        elif which == "setDigitalInputDeadtime":
            setting = {"deadtime": body.deadtime}
        else:
            setting = {"polarity": "falling" if body.polarity else "rising"}
        return lambda c: qmconfig.with_digital_input(c, port.controllerName, port.portNumber, **setting)
    return None
