"""What the platform refuses, with the message a user needs: which QM, job, port or waveform, and why."""

from __future__ import annotations

from qopemu.qmconfig import ConfigProblem


class Refused(Exception):
    """A request the platform turns down; each message says what to fix and names the offending thing."""

    def __init__(self, messages: list[str] | str):
        self.messages = [messages] if isinstance(messages, str) else list(messages)
        super().__init__("; ".join(self.messages))


class MachineNotFound(Refused):
    def __init__(self, qm_id: str):
        super().__init__(f"quantum machine '{qm_id}' is not open")


class JobNotFound(Refused):
    def __init__(self, job_id: str):
        super().__init__(f"job '{job_id}' does not exist")


class UnknownInputStream(Refused):
    pass


class NotRunning(Refused):
    """A job-level request for a job that is not running (pending, ended, or a simulation)."""


class BadElementCorrection(Refused):
    """An element correction the platform cannot take; `single_input` when the element has no mixer."""

    def __init__(self, message: str, single_input: bool = False):
        super().__init__(message)
        self.single_input = single_input


class PhysicalRefused(Refused):
    """The config is valid but does not fit the platform as it is now: ports held by other QMs, cores in use."""

    def __init__(self, problems: list[ConfigProblem]):
        self.problems = problems
        super().__init__([p.message for p in problems])
