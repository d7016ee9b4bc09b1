"""`qm.grpc.job_manager.JobManagerService`: input streams and per-job element corrections."""

from __future__ import annotations

from qm.grpc.qm.pb import general_messages_pb2, job_manager_pb2, job_manager_pb2_grpc

from qopemu.edge.errors import JOB_MANAGER, answers
from qopemu.platform.qop import Qop


def _header(job_id: str, error: int | None = None, message: str = "",
            detail: int | None = None) -> job_manager_pb2.JobManagerResponseHeader:
    if error is None:
        return job_manager_pb2.JobManagerResponseHeader(success=True, jobId=job_id)
    details = job_manager_pb2.JobErrorDetails(message=message)
    if detail is not None:
        details.jobOperationSpecificErrorType = detail
    return job_manager_pb2.JobManagerResponseHeader(success=False, jobId=job_id, jobManagerErrorType=error,
                                                    jobErrorDetails=details)


def _failed(response_type):
    """The failure reply: a header whose error type the client turns into its exception (edge/errors.py JOB_MANAGER)."""
    return lambda fields, request, context: response_type(jobManagerResponseHeader=_header(request.jobId, **fields))


class JobManagerService(job_manager_pb2_grpc.JobManagerServiceServicer):
    def __init__(self, qop: Qop):
        self._qop = qop

    @answers(JOB_MANAGER, _failed(job_manager_pb2.InsertInputStreamResponse))
    def InsertInputStream(self, request, context):
        kind = request.WhichOneof("stream_data_oneof")
        values = list(getattr(request, kind).data) if kind else []
        self._qop.push_input_stream(request.jobId, request.streamName, values)
        return job_manager_pb2.InsertInputStreamResponse(jobManagerResponseHeader=_header(request.jobId))

    @answers(JOB_MANAGER, _failed(job_manager_pb2.SetElementCorrectionResponse))
    def SetElementCorrection(self, request, context):
        m = request.correction
        applied = self._qop.set_element_correction(request.jobId, request.qeName, (m.v00, m.v01, m.v10, m.v11))
        return self._correction(request, job_manager_pb2.SetElementCorrectionResponse, applied)

    @answers(JOB_MANAGER, _failed(job_manager_pb2.GetElementCorrectionResponse))
    def GetElementCorrection(self, request, context):
        matrix = self._qop.get_element_correction(request.jobId, request.qeName)
        return self._correction(request, job_manager_pb2.GetElementCorrectionResponse, matrix)

    @staticmethod
    def _correction(request, response_type, matrix: tuple[float, float, float, float]):
        v00, v01, v10, v11 = matrix
        return response_type(jobManagerResponseHeader=_header(request.jobId),
                             correction=general_messages_pb2.Matrix(v00=v00, v01=v01, v10=v10, v11=v11))
