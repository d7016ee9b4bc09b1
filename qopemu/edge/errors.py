"""Domain refusals as the protocol's failure replies, which the client turns into its own exceptions.

Each reply style of the protocol has one table here, from exception class to what the reply carries; a servicer
method names its table and its reply once (`answers`), so a refusal is mapped in one place whichever RPC meets it.
A table is looked up along the exception's MRO, as Starlette's exception middleware does: a subclass answers as its
nearest listed base unless it has an entry of its own, and an exception no table lists propagates (gRPC's UNKNOWN).
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Generic, Mapping, TypeVar

import grpc
from qm.grpc.qm.pb import compiler_pb2, errors_pb2, general_messages_pb2, qm_manager_pb2

from qopemu.platform.errors import BadElementCorrection, JobNotFound, PhysicalRefused, Refused, UnknownInputStream
from qopemu.qmconfig import ConfigError, ConfigProblem
from qopemu.results.store import UnknownResultError

NOT_SUPPORTED = "not supported by qopemu yet: "

T = TypeVar("T")


class ReplyTable(Generic[T]):
    """Exception class -> entry; an entry is a function of the exception and the request giving what the reply
    carries for it."""

    def __init__(self, entries: Mapping[type[BaseException], Callable[[Any, Any], T]]):
        self._entries = dict(entries)

    def lookup(self, exc: BaseException) -> Callable[[Any, Any], T] | None:
        for cls in type(exc).__mro__:
            entry = self._entries.get(cls)
            if entry is not None:
                return entry
        return None


def answers(table: ReplyTable[T], reply: Callable[[T, Any, Any], Any]):
    """Servicer-method decorator: an exception `table` lists becomes `reply(entry(exc, request), request, context)`;
    any other propagates. Works on streaming (generator) methods too."""

    def decorate(method):
        def failure(exc: Exception, request, context):
            entry = table.lookup(exc)
            if entry is None:
                raise exc
            return reply(entry(exc, request), request, context)

        if inspect.isgeneratorfunction(method):
            @functools.wraps(method)
            def streaming(self, request, context):
                try:
                    yield from method(self, request, context)
                except Exception as exc:
                    yield failure(exc, request, context)
            return streaming

        @functools.wraps(method)
        def unary(self, request, context):
            try:
                return method(self, request, context)
            except Exception as exc:
                return failure(exc, request, context)
        return unary

    return decorate


def failed(response_type, flag: str = "success") -> Callable[[dict[str, Any], Any, Any], Any]:
    """The reply of the field styles: `response_type` with its success flag false and the entry's fields."""
    return lambda fields, request, context: response_type(**{flag: False}, **fields)


def aborted(status: tuple[grpc.StatusCode, str], request, context) -> None:
    """The reply of the status style: the call ends with a gRPC status, which the client raises as its error."""
    context.abort(*status)


def compiler_messages(messages: list[str]) -> list[compiler_pb2.CompilerMessage]:
    """`messages` of AddToQueue / Compile / Simulate: the client logs each at ERROR, then raises."""
    level = general_messages_pb2.MessageLevel.Message_LEVEL_ERROR
    return [compiler_pb2.CompilerMessage(message=m, level=level) for m in messages]


def error_messages(messages: list[str]) -> list[general_messages_pb2.ErrorMessage]:
    """`errors` of the QM and runtime-request replies: the client puts their text in the exception it raises."""
    return [general_messages_pb2.ErrorMessage(code=1, message=m) for m in messages]


def config_messages(problems: list[ConfigProblem]) -> list[qm_manager_pb2.ConfigValidationMessage]:
    """Printed by the client as `CONFIG ERROR in key "<path>" [<group>] : <message>`."""
    return [qm_manager_pb2.ConfigValidationMessage(message=p.message, group=p.group, path=p.path) for p in problems]


def physical_messages(problems: list[ConfigProblem]) -> list[qm_manager_pb2.PhysicalValidationMessage]:
    """Printed by the client as `PHYSICAL CONFIG ERROR in key "<path>" [<group>] : <message>`."""
    return [qm_manager_pb2.PhysicalValidationMessage(message=p.message, group=p.group, path=p.path)
            for p in problems]


# `errors` style: the QM replies (open, get, close) and the runtime requests (AddCompiledToQueue, QM-level
# settings, IO reads). Only opening a QM meets the config's own errors.
ERRORS = ReplyTable[dict[str, Any]]({
    Refused: lambda exc, request: {"errors": error_messages(exc.messages)},
    ConfigError: lambda exc, request: {"configValidationErrors": config_messages(exc.problems)},
    PhysicalRefused: lambda exc, request: {"physicalValidationErrors": physical_messages(exc.problems)},
})

# `messages` style: compiler messages, for AddToQueue, Compile and Simulate. Only Simulate meets config errors.
COMPILER = ReplyTable[dict[str, Any]]({
    Refused: lambda exc, request: {"messages": compiler_messages(exc.messages)},
    ConfigError: lambda exc, request: {"configValidationErrors": config_messages(exc.problems)},
})

# A bare `ok=false`: halting a job that does not exist (the client then says it could not halt it).
BARE = ReplyTable[dict[str, Any]]({JobNotFound: lambda exc, request: {}})

# Status style: the calls whose reply has no failure field end with a gRPC status.
STATUS = ReplyTable[tuple[grpc.StatusCode, str]]({
    Refused: lambda exc, request: (grpc.StatusCode.NOT_FOUND, str(exc)),
    UnknownResultError: lambda exc, request: (grpc.StatusCode.NOT_FOUND,
                                              f"job {request.jobId} has no result named {request.outputName!r}"),
})


def _job_error(error: int, detail: Callable[[Any], int | None] = lambda exc: None):
    def entry(exc: Exception, request) -> dict[str, Any]:
        return {"error": error, "message": str(exc), "detail": detail(exc)}
    return entry


# Job-manager style: the failure header of the job-level requests, whose error type picks the client's exception.
JOB_MANAGER = ReplyTable[dict[str, Any]]({
    JobNotFound: _job_error(errors_pb2.MissingJobError),
    UnknownInputStream: _job_error(errors_pb2.UnknownInputStreamError),
    Refused: _job_error(errors_pb2.InvalidJobExecutionStatusError),  # NotRunning, and a job not running
    BadElementCorrection: _job_error(errors_pb2.JobOperationSpecificError,
                                     lambda exc: errors_pb2.SingleInputElementError if exc.single_input
                                     else errors_pb2.InvalidCorrectionMatrixError),
})
