"""`qm.grpc.job_manager.JobManagerService`: input streams and per-job element corrections."""

from __future__ import annotations

from qm.grpc.qm.pb import errors_pb2, job_manager_pb2, job_manager_pb2_grpc

from qopemu.platform.qop import JobNotFound, Qop, Refused


def _header(job_id: str, error: int | None = None, message: str = "") -> job_manager_pb2.JobManagerResponseHeader:
    if error is None:
        return job_manager_pb2.JobManagerResponseHeader(success=True, jobId=job_id)
    return job_manager_pb2.JobManagerResponseHeader(
        success=False, jobId=job_id, jobManagerErrorType=error,
        jobErrorDetails=job_manager_pb2.JobErrorDetails(message=message),
    )


class JobManagerService(job_manager_pb2_grpc.JobManagerServiceServicer):
    def __init__(self, qop: Qop):
        self._qop = qop

    def InsertInputStream(self, request, context):
        kind = request.WhichOneof("stream_data_oneof")
        values = list(getattr(request, kind).data) if kind else []
        try:
            self._qop.push_input_stream(request.jobId, request.streamName, values)
        except JobNotFound:
            header = _header(request.jobId, errors_pb2.MissingJobError)
        except Refused:
            header = _header(request.jobId, errors_pb2.InvalidJobExecutionStatusError)
        else:
            header = _header(request.jobId)
        return job_manager_pb2.InsertInputStreamResponse(jobManagerResponseHeader=header)
