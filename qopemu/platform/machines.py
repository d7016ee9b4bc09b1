"""Quantum machines: open, list, get and close them, and the ports and cores they hold.

The seed document's "Multiple QMs" rules live here:
- a QM holds every port its config declares, and all cores its elements need, for as long as it is open;
- a port held by an open QM can be held by another only when *both* configs mark it `shareable`;
- the cores in use across all open QMs never exceed a controller's cores (elements naming the same `core` share);
- `open_qm(close_other_machines=True)` (and the client's default, which sends the same) closes the open QMs that
  block the new one — those holding a port it needs without both sides sharing it, then, if cores are still
  short on a controller, the QMs using cores there, oldest first — as the qm-qua 1.4 docstring describes
  ("any open quantum machine that uses resources required for the opening of the new quantum machine will be
  closed"). `close_other_machines=False` never closes anything and refuses the open instead.

One lock guards the allocation tables, so two users opening at once can never both get a port or a core.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

from qopemu import qmconfig
from qopemu.platform.hardware import Hardware
from qopemu.platform.queue import JobQueue
from qopemu.qmconfig import ConfigProblem, PortRef, QmConfig


class OpenRefused(Exception):
    """`open_qm` cannot go ahead; config problems (the config itself) and physical ones (the platform's state)."""

    def __init__(self, config_problems: list[ConfigProblem], physical_problems: list[ConfigProblem]):
        self.config_problems = config_problems
        self.physical_problems = physical_problems
        super().__init__("; ".join(p.message for p in config_problems + physical_problems))


class MachineNotFound(KeyError):
    def __init__(self, qm_id: str):
        super().__init__(qm_id)
        self.qm_id = qm_id

    def __str__(self) -> str:
        return f"quantum machine '{self.qm_id}' is not open"


@dataclass(eq=False)
class QuantumMachine:
    id: str
    config: QmConfig
    opened_by: str
    keep_dc_offsets_when_closing: bool
    queue: JobQueue = field(default_factory=JobQueue)
    io_values: dict[int, Any] = field(default_factory=lambda: {1: 0, 2: 0})
    compiled_programs: dict[str, Any] = field(default_factory=dict)  # program id -> engine CompiledProgram
    compile_cache: OrderedDict = field(default_factory=OrderedDict)  # program digest -> CompiledProgram
    runner: Any = None  # platform.scheduler.QmRunner
    lock: threading.Lock = field(default_factory=threading.Lock)  # guards io_values and the program tables

    def cores_by_controller(self) -> dict[str, int]:
        return cores_by_controller(self.config)


def cores_by_controller(config: QmConfig) -> dict[str, int]:
    """Cores a config takes on each controller; an element's cores sit on the controller of its first port."""
    group_controller: dict[str, str] = {}
    for element in config.elements.values():
        ports = element.ports()
        key = f"core:{element.core}" if element.core else f"element:{element.name}"
        if ports:
            group_controller.setdefault(key, ports[0].controller)
    totals: dict[str, int] = {}
    for key, cores in config.core_groups().items():
        controller = group_controller.get(key)
        if controller is not None:
            totals[controller] = totals.get(controller, 0) + cores
    return totals


class Machines:
    def __init__(self, hardware: Hardware, on_open: Callable[[QuantumMachine], None],
                 on_close: Callable[[QuantumMachine], None]):
        self._hardware = hardware
        self._on_open = on_open  # starts the QM's job runner
        self._on_close = on_close  # stops its runner, cancels its jobs
        self._machines: dict[str, QuantumMachine] = {}  # insertion order = opening order
        self._lock = threading.RLock()
        self._ids = itertools.count(int(time.time() * 1000))

    def open(self, config_pb, close_others: bool, user: str, keep_dc_offsets_when_closing: bool = False
             ) -> tuple[QuantumMachine, list[str]]:
        """Open a QM; returns it and the ids of the QMs closed to make room. Raises OpenRefused."""
        try:
            config = qmconfig.from_pb(config_pb, self._hardware.port_counts())
        except qmconfig.ConfigError as exc:
            raise OpenRefused(exc.problems, []) from None
        with self._lock:
            closed: list[str] = []
            if close_others:
                for qm in self._blocking(config):
                    self._close_locked(qm.id)
                    closed.append(qm.id)
            physical = self._conflicts(config)
            if physical:
                raise OpenRefused([], physical)
            qm = QuantumMachine(f"qm-{next(self._ids)}", config, user, keep_dc_offsets_when_closing)
            self._machines[qm.id] = qm
            self._on_open(qm)
            return qm, closed

    def list(self) -> list[str]:
        with self._lock:
            return list(self._machines)

    def get(self, qm_id: str) -> QuantumMachine:
        with self._lock:
            qm = self._machines.get(qm_id)
        if qm is None:
            raise MachineNotFound(qm_id)
        return qm

    def all(self) -> list[QuantumMachine]:
        with self._lock:
            return list(self._machines.values())

    def close(self, qm_id: str) -> None:
        with self._lock:
            self._close_locked(qm_id)

    def close_all(self) -> list[str]:
        with self._lock:
            ids = list(self._machines)
            for qm_id in ids:
                self._close_locked(qm_id)
            return ids

    def _close_locked(self, qm_id: str) -> None:
        qm = self._machines.pop(qm_id, None)
        if qm is None:
            raise MachineNotFound(qm_id)
        self._on_close(qm)

    # -- allocation ---------------------------------------------------------------------------------------------

    def _port_conflicts(self, config: QmConfig) -> list[tuple[PortRef, QuantumMachine]]:
        conflicts = []
        for ref, port in config.used_ports().items():
            for qm in self._machines.values():
                held = qm.config.used_ports().get(ref)
                if held is not None and not (port.shareable and held.shareable):
                    conflicts.append((ref, qm))
        return conflicts

    def _free_cores(self, controller: str, excluding: set[str] = frozenset()) -> int:
        used = sum(qm.cores_by_controller().get(controller, 0)
                   for qm in self._machines.values() if qm.id not in excluding)
        return self._hardware.cores(controller) - used

    def _conflicts(self, config: QmConfig) -> list[ConfigProblem]:
        problems = []
        for ref, qm in self._port_conflicts(config):
            mine = config.used_ports()[ref].shareable
            why = "its config does not mark it shareable" if mine else "this config does not mark it shareable"
            # The first sentence is the wording QM's own multi-user helper (py-qua-tools qm_session) matches.
            problems.append(ConfigProblem(
                f"controllers.{ref.controller}.{ref.kind}.{ref.number}",
                f"{ref.kind} port ('{ref.controller}', {ref.number}) cannot be used because it isn't shareable in "
                f"other QM: quantum machine '{qm.id}' holds it, and {why}.",
                "port-conflict",
            ))
        for controller, needed in cores_by_controller(config).items():
            free = self._free_cores(controller)
            if needed > free:
                holders = ", ".join(f"{qm.id} ({qm.cores_by_controller()[controller]})"
                                    for qm in self._machines.values() if qm.cores_by_controller().get(controller))
                problems.append(ConfigProblem(
                    f"controllers.{controller}",
                    f"not enough cores on {controller}: this config needs {needed} cores, {free} of "
                    f"{self._hardware.cores(controller)} are free (in use by: {holders})",
                    "cores",
                ))
        return problems

    def _blocking(self, config: QmConfig) -> list[QuantumMachine]:
        """The open QMs to close so that `config` fits: port holders first, then core users, oldest first."""
        blocking = {qm.id: qm for _, qm in self._port_conflicts(config)}
        for controller, needed in cores_by_controller(config).items():
            for qm in self._machines.values():
                if self._free_cores(controller, excluding=set(blocking)) >= needed:
                    break
                if qm.id not in blocking and qm.cores_by_controller().get(controller):
                    blocking[qm.id] = qm
        return list(blocking.values())
