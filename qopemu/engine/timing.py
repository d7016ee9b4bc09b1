"""Per-element timelines on the 4 ns clock, as the code generator lays them out.

QUA timing rules this module encodes (QM docs, Guides/timing_in_qua.md, "Timing in QUA"):
1. every pulse is played as soon as possible; 2. `wait` delays an element like a zero-amplitude play;
3. pulses on the same element are sequential; 4. `align(...)` makes what follows wait for what precedes on all
the aligned elements. "Each element has its own core, unless defined otherwise. If elements do share cores, they
are dependent on each other as in case 3": elements sharing a core (config `core`/thread) share one timeline.
"The Implicit Align": elements that appear together in a for/while loop, if/elif/else or switch/case are aligned
at the beginning of the flow-control branch, both before the statement and at the start of every iteration.
`strict_timing_` only forbids gaps; the emulator never inserts gaps (all real-time computations take zero time,
which is the deterministic case of the guide), so it is timing-neutral. A clock cycle is 4 ns
(Guides/qua_ref.md); `wait`, `duration` and `truncate` are given in cycles.

The generated program keeps one local int per timeline (ns since the start of the job; the program itself starts
`PROGRAM_START_NS` later). This module names those
locals and emits the small snippets that move them; the compiler decides when.
"""

from __future__ import annotations

from typing import Iterable

from qopemu.qmconfig import Element

CLOCK_NS = 4

# ---- What the hardware's own work costs: every latency the engine models, in one place, with its evidence.

# The program's first instruction reaches the outputs this long after the job starts: QM's simulated samples show an
# idle lead-in before the first pulse. Read off the plots of qua-libs Tutorials/intro-to-timing (four programs whose
# first pulse starts at once: it rises 208 ns, +-5 ns, after sample 0 in each). Every time the engine keeps, and so
# every sample index, waveform report time, save and play timestamp and loopback window, counts from the same
# origin, sample 0 of a simulation; executed jobs run the same engine and share it.
PROGRAM_START_NS = 208

# An `align` whose elements' times are only known at run time (after a branch on a runtime value, a runtime
# duration, a trigger) is a message from one core to another, which takes a few cycles: "there is a few cycles delay
# between the pulses" (qua-libs Tutorials/intro-to-timing, example 4, after the guide Guides/timing_in_qua); its
# zoomed plot shows 20 ns between the end of one pulse and the start of the next. A deterministic align costs
# nothing: the compiler turns it into a wait of known length (same tutorial, example 3).
ALIGN_HANDOFF_NS = 20

# Real-time computation is not free ("Each pulse is played immediately, unless specified otherwise or a calculation
# has to be done", Guides/timing_in_qua). The one public figure for it: in the same tutorial's example 4, computing a
# random duration delays the pulse that uses it by 84 ns (+-5 ns) past the program start. qopemu charges that much
# for each iteration of a loop: the core runs ahead of the pulses it queues, so the cost only shows where an
# iteration plays less than that, as in a loop that only saves, whose timestamps then advance by it.
LOOP_ITERATION_NS = 84

# `wait_for_trigger` resumes this long after the trigger's edge: "because of the response delay of the OPX after
# being triggered of about 300ns" (qua-libs, AMO Use Case 1 - Saffman Lab - Atom Sorting, readme). The trigger port
# is sampled every 4 ns (Guides/external_trigger), so a trigger is seen on the clock.
TRIGGER_RESPONSE_NS = 300


class TimelineLayout:
    """Which timeline local (`T0`, `T1`, ...) each element uses: one per core group, in config order."""

    def __init__(self, elements: dict[str, Element]):
        self._var: dict[str, str] = {}
        by_core: dict[str, str] = {}
        for name, element in elements.items():
            key = f"core:{element.core}" if element.core else f"element:{name}"
            if key not in by_core:
                by_core[key] = f"T{len(by_core)}"
            self._var[name] = by_core[key]

    def var(self, element: str) -> str:
        return self._var[element]

    def vars_for(self, elements: Iterable[str]) -> list[str]:
        return sorted({self._var[e] for e in elements}, key=lambda v: int(v[1:]))

    def all_vars(self) -> list[str]:
        return self.vars_for(self._var)

    def align(self, elements: Iterable[str], handoff: bool = False) -> list[str]:
        """Lines that move every given element's timeline to the latest of them; `handoff`: the align is not
        deterministic, and the cores pass the word in `ALIGN_HANDOFF_NS`."""
        names = self.vars_for(elements)
        if len(names) < 2:
            return []
        gap = f" + {ALIGN_HANDOFF_NS}" if handoff else ""
        return [f"_m = {max_expr(names)}{gap}", " = ".join(names) + " = _m"]


def max_expr(names: list[str]) -> str:
    """Python expression for the latest of some timeline locals (cheapest form for the common 1–2 cases)."""
    if len(names) == 1:
        return names[0]
    if len(names) == 2:
        a, b = names
        return f"({a} if {a} > {b} else {b})"
    return f"max({', '.join(names)})"
