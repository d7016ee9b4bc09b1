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

from qopemu.platform.errors import MachineNotFound, PhysicalRefused
from qopemu.platform.hardware import Hardware
from qopemu.platform.queue import JobQueue
from qopemu.qmconfig import ConfigProblem, PortRef, QmConfig


@dataclass(eq=False)
class QuantumMachine:
    id: str
    config: QmConfig  # replaced as a whole by runtime settings (under `lock`)
    queue: JobQueue = field(default_factory=JobQueue)
    io_values: dict[int, Any] = field(default_factory=lambda: {1: 0, 2: 0})
    # program id -> (engine CompiledProgram, the QmConfig it was compiled against, which its job runs with)
    compiled_programs: dict[str, Any] = field(default_factory=dict)
    compile_cache: OrderedDict = field(default_factory=OrderedDict)  # program digest -> (config, CompiledProgram)
    runner: Any = None  # platform.scheduler.QmRunner
    lock: threading.Lock = field(default_factory=threading.Lock)  # guards config, io_values and program tables

    def cores_by_controller(self) -> dict[str, int]:
        return cores_by_controller(self.config)


def cores_by_controller(config: QmConfig) -> dict[str, int]:
    """Cores a config takes on each controller; an element's cores sit on the controller of its first port."""
    group_controller: dict[str, str] = {}
    for element in config.elements.values():
        ports = element.ports()
        if ports:
            group_controller.setdefault(element.core_group, ports[0].controller)
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
        self._lock = threading.Lock()
        self._ids = itertools.count(int(time.time() * 1000))

    def open(self, config: QmConfig, close_others: bool) -> tuple[QuantumMachine, list[str]]:
        """Open a QM on a validated config; returns it and the ids of the QMs closed to make room for it.
        Raises PhysicalRefused when its ports or cores are not free (and close_others is False)."""
        with self._lock:
            closing = [qm.id for qm in self._blocking(config)] if close_others else []
            physical = self._conflicts(config, excluding=set(closing))
            if physical:  # even closing the blocking QMs would not make room: close nothing
                raise PhysicalRefused(physical)
            closed = [self._machines.pop(qm_id) for qm_id in closing]
            qm = QuantumMachine(f"qm-{next(self._ids)}", config)
            self._machines[qm.id] = qm
            self._on_open(qm)
        # Closing halts running jobs; it happens outside the lock that every request takes to find its QM.
        for old in closed:
            self._on_close(old)
        return qm, [old.id for old in closed]

    def list(self) -> list[str]:
        with self._lock:
            return list(self._machines)

    def get(self, qm_id: str) -> QuantumMachine:
        with self._lock:
            qm = self._machines.get(qm_id)
        if qm is None:
            raise MachineNotFound(qm_id)
        return qm

    def close(self, qm_id: str) -> None:
        with self._lock:
            qm = self._machines.pop(qm_id, None)
        if qm is None:
            raise MachineNotFound(qm_id)
        self._on_close(qm)

    def close_all(self) -> list[str]:
        with self._lock:
            closed, self._machines = list(self._machines.values()), {}
        for qm in closed:
            self._on_close(qm)
        return [qm.id for qm in closed]

    # -- allocation ---------------------------------------------------------------------------------------------

    def _open_except(self, excluding: set[str]) -> list[QuantumMachine]:
        return [qm for qm in self._machines.values() if qm.id not in excluding]

    def _port_conflicts(self, config: QmConfig, excluding: set[str] = frozenset()
                        ) -> list[tuple[PortRef, QuantumMachine]]:
        conflicts = []
        holders = [(qm, qm.config.used_ports()) for qm in self._open_except(excluding)]
        for ref, port in config.used_ports().items():
            for qm, used in holders:
                held = used.get(ref)
                if held is not None and not (port.shareable and held.shareable):
                    conflicts.append((ref, qm))
        return conflicts

    def _free_cores(self, controller: str, excluding: set[str] = frozenset()) -> int:
        used = sum(qm.cores_by_controller().get(controller, 0) for qm in self._open_except(excluding))
        return self._hardware.cores(controller) - used

    def _conflicts(self, config: QmConfig, excluding: set[str]) -> list[ConfigProblem]:
        problems = []
        mine = config.used_ports()
        for ref, qm in self._port_conflicts(config, excluding):
            why = ("its config does not mark it shareable" if mine[ref].shareable
                   else "this config does not mark it shareable")
            # The first sentence, full stop included, is the platform's wording that QM's own multi-user helper
            # (py-qua-tools qm_session) matches to wait for the port instead of failing.
            problems.append(ConfigProblem(
                f"controllers.{ref.controller}.{ref.kind}.{ref.number}",
                f"{ref.kind} port ('{ref.controller}', {ref.number}) cannot be used because it isn't shareable in "
                f"other QM. Quantum machine '{qm.id}' holds it, and {why}.",
                "port-conflict",
            ))
        for controller, needed in cores_by_controller(config).items():
            free = self._free_cores(controller, excluding)
            if needed > free:
                holders = ", ".join(f"{qm.id} ({qm.cores_by_controller()[controller]})"
                                    for qm in self._open_except(excluding) if qm.cores_by_controller().get(controller))
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
