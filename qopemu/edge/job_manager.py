"""`qm.grpc.job_manager.JobManagerService`: input streams and per-job element corrections."""

from __future__ import annotations

from qm.grpc.qm.pb import errors_pb2, job_manager_pb2, job_manager_pb2_grpc

from qopemu.edge.errors import NOT_SUPPORTED
from qopemu.platform.errors import JobNotFound, Refused, UnknownInputStream
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


class JobManagerService(job_manager_pb2_grpc.JobManagerServiceServicer):
    def __init__(self, qop: Qop):
        self._qop = qop

    def InsertInputStream(self, request, context):
        kind = request.WhichOneof("stream_data_oneof")
        values = list(getattr(request, kind).data) if kind else []
        try:
            self._qop.push_input_stream(request.jobId, request.streamName, values)
        except JobNotFound as exc:
            header = _header(request.jobId, errors_pb2.MissingJobError, str(exc))
        except UnknownInputStream as exc:
            header = _header(request.jobId, errors_pb2.UnknownInputStreamError, str(exc))
        except Refused as exc:
            header = _header(request.jobId, errors_pb2.InvalidJobExecutionStatusError, str(exc))
        else:
            header = _header(request.jobId)
        return job_manager_pb2.InsertInputStreamResponse(jobManagerResponseHeader=header)

    # The client turns this answer into InvalidElementCorrectionError carrying the message.
    def SetElementCorrection(self, request, context):
        return job_manager_pb2.SetElementCorrectionResponse(jobManagerResponseHeader=self._no_correction(request))

    def GetElementCorrection(self, request, context):
        return job_manager_pb2.GetElementCorrectionResponse(jobManagerResponseHeader=self._no_correction(request))

    @staticmethod
    def _no_correction(request) -> job_manager_pb2.JobManagerResponseHeader:
        return _header(request.jobId, errors_pb2.JobOperationSpecificError,
                       NOT_SUPPORTED + f"job.set_element_correction / get_element_correction ('{request.qeName}'); "
                       "use update_correction in the QUA program", errors_pb2.InvalidCorrectionMatrixError)
