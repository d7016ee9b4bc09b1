"""`qm.grpc.job_manager.JobManagerService`: input streams and per-job element corrections."""

from __future__ import annotations

from qm.grpc.qm.pb import errors_pb2, general_messages_pb2, job_manager_pb2, job_manager_pb2_grpc

from qopemu.platform.errors import BadElementCorrection, JobNotFound, NotRunning, Refused, UnknownInputStream
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

    def SetElementCorrection(self, request, context):
        m = request.correction
        matrix = (m.v00, m.v01, m.v10, m.v11)
        return self._correction(request, job_manager_pb2.SetElementCorrectionResponse,
                                lambda: self._qop.set_element_correction(request.jobId, request.qeName, matrix))

    def GetElementCorrection(self, request, context):
        return self._correction(request, job_manager_pb2.GetElementCorrectionResponse,
                                lambda: self._qop.get_element_correction(request.jobId, request.qeName))

    @staticmethod
    def _correction(request, response_type, action):
        """Run a correction request; failures become the header codes the client turns into its exceptions."""
        try:
            v00, v01, v10, v11 = action()
        except JobNotFound as exc:
            header = _header(request.jobId, errors_pb2.MissingJobError, str(exc))
        except NotRunning as exc:
            header = _header(request.jobId, errors_pb2.InvalidJobExecutionStatusError, str(exc))
        except BadElementCorrection as exc:
            detail = errors_pb2.SingleInputElementError if exc.single_input else errors_pb2.InvalidCorrectionMatrixError
            header = _header(request.jobId, errors_pb2.JobOperationSpecificError, str(exc), detail)
        else:
            return response_type(jobManagerResponseHeader=_header(request.jobId),
                                 correction=general_messages_pb2.Matrix(v00=v00, v01=v01, v10=v10, v11=v11))
        return response_type(jobManagerResponseHeader=header)
