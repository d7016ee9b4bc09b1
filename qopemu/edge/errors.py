"""Domain refusals as the protocol's failure fields, which the client turns into its own exceptions."""

from __future__ import annotations

from qm.grpc.qm.pb import compiler_pb2, general_messages_pb2, qm_manager_pb2

from qopemu.qmconfig import ConfigProblem

NOT_SUPPORTED = "not supported by qopemu yet: "


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
