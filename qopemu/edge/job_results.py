"""JobResultsService: the client's result RPCs, translated to and from a job's `JobResults`."""

from __future__ import annotations

from typing import Callable, Iterator

import grpc
from google.protobuf.wrappers_pb2 import BoolValue

from qm.grpc.qm.pb import job_results_pb2, job_results_pb2_grpc
from qopemu.edge.errors import STATUS, aborted, answers
from qopemu.results.store import JobResults

_SEVERITY = {
    "error": job_results_pb2.GetJobErrorsResponse.ERROR,
    "warning": job_results_pb2.GetJobErrorsResponse.WARNING,
}


class JobResultsService(job_results_pb2_grpc.JobResultsServiceServicer):
    def __init__(self, lookup: Callable[[str], JobResults | None]) -> None:
        self._lookup = lookup

    def _results(self, job_id: str, context: grpc.ServicerContext) -> JobResults:
        results = self._lookup(job_id)
        if results is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"job {job_id} not found (unknown id, or its results were removed)")
        return results

    def GetJobResultSchema(self, request, context):
        results = self._results(request.jobId, context)
        return job_results_pb2.GetJobResultSchemaResponse(
            items=[
                job_results_pb2.GetJobResultSchemaResponse.Item(
                    name=item.name,
                    simpleDType=item.simple_dtype,
                    isSingle=item.is_single,
                    expectedCount=item.expected_count,
                    shape=item.shape,
                )
                for item in results.schema()
            ]
        )

    def GetJobState(self, request, context):
        done, closed, has_dataloss = self._results(request.jobId, context).state()
        return job_results_pb2.GetJobStateResponse(done=done, closed=closed, hasDataloss=has_dataloss)

    @answers(STATUS, aborted)
    def GetJobNamedResultHeader(self, request, context):
        header = self._results(request.jobId, context).header(request.outputName, request.flatFormat)
        return job_results_pb2.GetJobNamedResultHeaderResponse(
            isSingle=header.is_single,
            countSoFar=header.count_so_far,
            simpleDType=header.simple_dtype,
            done=header.done,
            closed=header.closed,
            hasDataloss=header.has_dataloss,
            shape=header.shape,
            hasExecutionErrors=BoolValue(value=header.has_execution_errors),
        )

    @answers(STATUS, aborted)
    def GetJobNamedResult(self, request, context) -> Iterator[job_results_pb2.GetJobNamedResultResponse]:
        results = self._results(request.jobId, context)
        # Clients since QOP 2 send the start in longOffset; the old int32 `offset` is the fallback.
        offset = request.longOffset.value if request.HasField("longOffset") else request.offset
        for count, data in results.read(request.outputName, offset, request.limit):
            yield job_results_pb2.GetJobNamedResultResponse(countOfItems=count, data=data)

    def GetJobErrors(self, request, context):
        results = self._results(request.jobId, context)
        return job_results_pb2.GetJobErrorsResponse(
            jobId=request.jobId,
            errors=[
                job_results_pb2.GetJobErrorsResponse.Error(
                    errorCode=e.code, errorSeverity=_SEVERITY[e.severity], message=e.message
                )
                for e in results.errors()
            ],
        )
