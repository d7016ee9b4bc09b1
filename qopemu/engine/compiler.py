"""QUA program protobuf -> Python source, compiled once and run many times (DESIGN.md: compile, do not interpret).

Like Jinja2's compiler, this module walks the program once, validates every node against the QM's config and
writes the body of one Python function: QUA variables become locals (fixed values as raw int32 words, see
engine/fixed.py), each timeline is a local int (engine/timing.py), control flow becomes Python control flow, and
what the config fixes (pulse lengths, IFs, time of flight, integration weights) is folded into constants or into
per-measure specs (engine/acquisition.py). Event recording lines are marked so that two variants of the source
come out of one walk: with and without events, and a run without events pays nothing for them.

`CompiledProgram` holds only the generated text and plain data, so it pickles to a worker process; the code
object is built lazily there and cached.

Every problem found is collected with its node's `loc`, then raised together as one `CompileError`.
Protobuf stays in this module.
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass, field
import numpy as np
from google.protobuf.json_format import MessageToDict

from qopemu.engine import fixed as fx
from qopemu.engine.acquisition import DigitalInput, DigitalProcess, MeasureSpec, ProcessSpec, Term
from qopemu.engine.runtime import pure_helpers
from qopemu.engine.timing import (CLOCK_NS, LOOP_ITERATION_NS, PROGRAM_START_NS, TRIGGER_RESPONSE_NS, TimelineLayout,
                                  max_expr)
from qopemu.engine.waveforms import alignment_delay_ns
from qopemu.qmconfig import CORRECTION_RANGE, QmConfig, correction_in_range
from qopemu.results.streams import ADC, BOOL, FIXED, INT
_PB_TYPES = {0: INT, 1: BOOL, 2: FIXED}

# BinaryExpression.BinaryOperator values (inc_qua.proto)
ADD, SUB, MULT, DIV, AND, OR, XOR, LT, LET, GT, GET, EQ, SHL, SHR = range(14)
_COMPARISONS = {LT: "<", LET: "<=", GT: ">", GET: ">=", EQ: "=="}
_BITWISE = {AND: "&", OR: "|", XOR: "^"}

_FREQ_UNITS = {0: 1.0, 1: 1e-3, 2: 1e-6, 3: 1e-9, 4: 1e-12}  # UpdateFrequencyStatement.Units: Hz, mHz, uHz...
_CHIRP_UNITS = {0: 1.0, 1: 1e-3, 2: 1e-6, 3: 1e-9, 4: 1e-12}  # Chirp.Units: Hz/ns, mHz/ns, ...
_EMPTY = np.zeros(0)
# Statements that change an element's oscillator state at run time. update_correction is one: "Up to QOP 3.3,
# calling update_correction will also reset the frame of the oscillator" (qm.qua.update_correction docstring).
_PHASE_STATEMENTS = ("updateFrequency", "zRotation", "resetFrame", "resetPhase", "fastFrameRotation",
                     "updateCorrection")
# Statements that name one element (`qe`): the ones that change its phase, and these.
_ELEMENT_STATEMENTS = ("play", "measure", "setDcOffset", "rampToZero") + _PHASE_STATEMENTS
_EVENT = "\x00"  # marks a generated line that only exists in the events variant
_NOT_YET = "not supported by qopemu yet"
_STREAM = "\x00stream:"  # marks a stream tag among the names a statement mentions


class CompileError(Exception):
    """A program the platform would refuse; `messages` lists every problem, each prefixed with its `loc`."""

    def __init__(self, messages: list[str]):
        self.messages = messages
        super().__init__("\n".join(messages))


@dataclass
class CompiledProgram:
    """A validated program as generated source plus plain data (picklable; code objects are built lazily)."""

    source: str
    source_with_events: str
    measures: list[MeasureSpec]
    input_streams: dict[str, tuple[str, int]]  # variable name as the client pushes it -> (type, size)
    stream_kinds: dict[str, str]
    result_model: list
    overridable_waveforms: dict[str, int]
    # raw ADC stream -> samples per trace, when every measure saving to it has the same (the results' schema)
    adc_trace_lengths: dict[str, int] = field(default_factory=dict)
    # stream -> iterations of the loops around its saves, outermost first, for `auto_reshape()`: known when every
    # save to it sits in the same for_ / for_each_ loops of literal bounds
    auto_reshape_dims: dict[str, tuple[int, ...]] = field(default_factory=dict)
    _code: dict = field(default_factory=dict, repr=False, compare=False)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_code"] = {}
        return state

    def code(self, with_events: bool):
        """The compiled code object of one variant (built on first use in this process)."""
        if with_events not in self._code:
            self._code[with_events] = _python_code(self.source_with_events if with_events else self.source)
        return self._code[with_events]


@functools.lru_cache(maxsize=64)
def _python_code(text: str):
    """Generated source compiled to a code object. A worker receives the program anew (pickled) with every job, and
    users run the same program again and again: the source is the key, so each is compiled once per process."""
    return compile(text, "<qua program>", "exec")


def compile_program(program_pb, config: QmConfig) -> CompiledProgram:
    """Validate `program_pb` (a `QuaProgram`) against `config` and compile it; raises `CompileError`."""
    return _Generator(program_pb, config).build()


def program_digest(program_pb) -> bytes:
    """Identifies a program by its content, so that one sent again can reuse its compiled form."""
    return hashlib.blake2b(program_pb.SerializeToString(deterministic=True), digest_size=16).digest()


@dataclass
class _Var:
    local: str
    type: str
    size: int
    is_array: bool
    input_stream: bool
    name: str


@dataclass
class _Expr:
    src: str
    type: str
    const: object = None  # folded value (raw word for fixed) or None
    float_literal: float | None = None  # the REAL literal's own value, for contextual typing
    io: bool = False  # an IO1/IO2 read, typed by its context


class _Generator:
    def __init__(self, program_pb, config: QmConfig):
        self.pb = program_pb
        self.config = config
        self.problems: list[str] = []
        self.lines: list[str] = []
        self.depth = 1
        self.vars: dict[str, _Var] = {}
        self.layout = TimelineLayout(config.elements)
        self.measures: list[MeasureSpec] = []
        self.stream_kinds: dict[str, str] = {}
        self.loop_counts: list[int | None] = []  # iterations of each loop around the statement compiled now
        self.save_loops: dict[str, set[tuple[int | None, ...]]] = {}  # stream -> the loops around its saves
        self.overridable: dict[str, int] = {}
        self.tmp = 0
        self.all_elements: list[str] = []
        self.dynamic_phase: dict[str, int] = {}  # element -> index of its oscillator-state locals
        self.dynamic_correction: dict[str, int] = {}  # element -> index of its mixer-correction local
        # Timelines whose time, at this point of the walk, depends on run-time values: an align with one of them is
        # not deterministic (engine/timing.py ALIGN_HANDOFF_NS).
        self.runtime_timed: set[str] = set()
        self.core_clock_synced = False  # no timeline moved since the last save brought `_c` up to them
        self.core_clock_stamp: str | None = None  # a local holding `_c` as that save saw it
        # Measures whose acquisition waits (see `_st_measure`): index -> (names the statement mentions, the lines
        # that acquire and write its results).
        self.pending: dict[int, tuple[set[str], list[str]]] = {}

    # ---------------------------------------------------------------------------------------------- driver

    def build(self) -> CompiledProgram:
        script = self.pb.script
        self._declare(script.variables)
        body = script.body.statements
        self.all_elements = [e for e in self.config.elements if e in self._elements_of(body, all_known=True)]
        for name in self._elements_with(body, _PHASE_STATEMENTS, every_element=("resetGlobalPhase",)):
            self.dynamic_phase[name] = len(self.dynamic_phase)
        for name in self._elements_with(body, ("updateCorrection",)):
            self.dynamic_correction[name] = len(self.dynamic_correction)
        self._prelude()
        self._block(body, loop_elements=None)
        self._epilogue()
        if self.problems:
            raise CompileError(self.problems)
        result_model = [MessageToDict(item) for item in self.pb.resultAnalysis.model]
        plain = [line for line in self.lines if not line.startswith(_EVENT)]
        with_events = [line.lstrip(_EVENT) for line in self.lines]
        return CompiledProgram(
            source="\n".join(plain) + "\n",
            source_with_events="\n".join(with_events) + "\n",
            measures=self.measures,
            input_streams={v.name: (v.type, v.size) for v in self.vars.values() if v.input_stream},
            stream_kinds=self.stream_kinds,
            result_model=result_model,
            overridable_waveforms=self.overridable,
            adc_trace_lengths=self._adc_trace_lengths(),
            auto_reshape_dims={tag: dims for tag, (dims, *others) in self.save_loops.items()
                               if not others and dims and None not in dims},
        )

    def _adc_trace_lengths(self) -> dict[str, int]:
        lengths: dict[str, set[int]] = {}
        for spec in self.measures:
            if spec.adc_tag is not None:
                lengths.setdefault(spec.adc_tag, set()).add(spec.trace_length)
        return {tag: min(s) for tag, s in lengths.items() if len(s) == 1}

    def problem(self, loc: str, message: str) -> None:
        self.problems.append(f"{loc}: {message}" if loc else message)

    def emit(self, line: str) -> None:
        self.lines.append("    " * self.depth + line)

    def emit_event(self, line: str) -> None:
        self.lines.append(_EVENT + "    " * self.depth + line)

    def fresh(self, stem: str) -> str:
        self.tmp += 1
        return f"_{stem}{self.tmp}"

    # ---------------------------------------------------------------------------------------- declarations

    def _declare(self, declarations) -> None:
        for i, dec in enumerate(declarations):
            t = _PB_TYPES.get(dec.type, INT)
            is_array = dec.dim == 1 or dec.size > 1
            size = max(dec.size, 1)
            var = _Var(f"x{i}", t, size, is_array, dec.isInputStream, dec.name)
            self.vars[dec.name] = var
            values = [self._literal_value(lit.value, _PB_TYPES.get(lit.type, INT), t, "") for lit in dec.value]
            if is_array and values and len(values) != size:
                self.problem("", f"array '{dec.name}' declares {size} cells but {len(values)} initial values")

    def _prelude(self) -> None:
        self.lines.append("def _program(_rt):")
        for name in ("save", "save_adc", "get_io", "set_io"):
            self.emit(f"_{name} = _rt.host.{name}")
        self.emit("_read_input_stream = _rt.read_input_stream")
        self.emit("_pause = _rt.pause")
        self.emit("_trigger = _rt.trigger")
        self.emit("_ev = _rt.record")
        self.emit("_corr = getattr(_rt.host, 'corrections', {})")
        self.emit("_mt = _rt.max_time")
        self.emit("_M = _rt.acquirers")
        self.emit("_S = 0")
        self.emit(f"_c = {PROGRAM_START_NS}")  # where the core's computation has got to (save timestamps)
        for var in self.vars.values():
            init = [self._literal_value(lit.value, _PB_TYPES.get(lit.type, INT), var.type, "")
                    for lit in self._dec(var.name).value]
            zero = {INT: 0, FIXED: 0, BOOL: False}[var.type]
            if var.is_array:
                cells = init if len(init) == var.size else [zero] * var.size
                self.emit(f"{var.local} = {cells!r}")
            else:
                self.emit(f"{var.local} = {init[0] if init else zero!r}")
        for t in self.layout.all_vars():
            self.emit(f"{t} = {PROGRAM_START_NS}")
        for name, i in self.dynamic_phase.items():
            element = self.config.elements[name]
            self.emit(f"F{i} = {float(element.intermediate_frequency)!r}; P{i} = 0.0; R{i} = {PROGRAM_START_NS}; "
                      f"Z{i} = 0.0")
        for i in self.dynamic_correction.values():
            self.emit(f"C{i} = None")  # the config's mixer matrix until update_correction
        self.emit("try:")
        self.depth += 1

    def _epilogue(self) -> None:
        # "A sticky element always ramps back to its DC offset value when the element has reached its final
        # instruction of the program" (features guide, "Sticky Element"): that is where its timeline ends, trailing
        # waits included. A run stopped at the simulation horizon has not ended, so it records no ramp.
        for name in self.all_elements:
            sticky = self.config.elements[name].sticky
            if sticky is not None:
                self.emit_event(f"_ev(_RampToZeroEvent({name!r}, {self.layout.var(name)}, {sticky.duration}))")
        self.emit("pass")
        self.depth -= 1
        self.emit("except _Stop:")
        self.emit("    pass")
        self.emit(f"return ({self._now()}), _S")

    def _dec(self, name: str):
        for dec in self.pb.script.variables:
            if dec.name == name:
                return dec
        raise KeyError(name)

    def _literal_value(self, text: str, literal_type: str, want: str, loc: str):
        """A literal string as a value of type `want` (raw word for fixed)."""
        try:
            if literal_type == BOOL:
                value: object = text.strip().lower() == "true"
            elif literal_type == INT:
                value = int(text)
            else:
                value = float(text)
        except ValueError:
            self.problem(loc, f"invalid literal '{text}'")
            return 0
        if want == BOOL:
            return bool(value)
        if want == INT:  # a float where an int is wanted is truncated, as the platform casts it
            return fx.wrap(math.trunc(value)) if isinstance(value, float) else fx.wrap(int(value))
        return fx.fixed_from_float(float(value))

    # ---------------------------------------------------------------------------------- static analysis

    def _element_names(self, refs) -> list[str]:
        return [r.name for r in refs]

    def _elements_of(self, statements, all_known: bool = False) -> set[str]:
        """Elements a statement list touches (wait()/align() with no element mean every program element)."""
        found: set[str] = set()
        for statement in statements:
            kind = statement.WhichOneof("statement_oneof")
            node = getattr(statement, kind) if kind else None
            if kind in _ELEMENT_STATEMENTS:
                found.add(node.qe.name)
            elif kind in ("wait", "align"):
                names = self._element_names(node.qe)
                found.update(names if names else ([] if all_known else self.all_elements))
            elif kind == "waitForTrigger":
                found.update(self._element_names(node.qe))
            elif kind == "resetGlobalPhase" and not all_known:
                found.update(self.all_elements)
            for body in self._bodies(kind, node):
                found |= self._elements_of(body, all_known)
        return {e for e in found if e in self.config.elements}

    def _bodies(self, kind, node) -> list:
        if kind == "if":
            return [node.body.statements, *[e.body.statements for e in node.elseifs],
                    getattr(node, "else").statements]
        if kind == "for":
            return [node.init.statements, node.body.statements, node.update.statements]
        if kind in ("forEach", "strictTiming"):
            return [node.body.statements]
        return []

    def _elements_with(self, statements, kinds: tuple[str, ...], every_element: tuple[str, ...] = ()) -> list[str]:
        """Elements named by a statement of `kinds` anywhere in `statements` (a statement of `every_element` names
        them all), in order of appearance. Elements whose oscillator or correction changes at run time get state
        locals; the others get constant-folded values."""
        names: list[str] = []
        for statement in statements:
            kind = statement.WhichOneof("statement_oneof")
            node = getattr(statement, kind) if kind else None
            if kind in kinds:
                names.append(node.qe.name)
            elif kind in every_element:
                names.extend(self.all_elements)
            for body in self._bodies(kind, node):
                names.extend(self._elements_with(body, kinds, every_element))
        return [n for n in dict.fromkeys(names) if n in self.config.elements]

    # ------------------------------------------------------------------------------------------- blocks

    def _block(self, statements, loop_elements: set[str] | None) -> None:
        """Statements of one block; `loop_elements` set: this is a loop body, check the simulation horizon."""
        self.emit(f"_S += {len(statements)}")
        if loop_elements is not None:
            names = self.layout.vars_for(loop_elements)
            if names:
                self.emit(f"if {' and '.join(f'{n} > _mt' for n in names)}: raise _Stop")
                if self._contains(statements, ("save",)):  # the iteration's cost only shows in save timestamps
                    self.emit(f"_c += {LOOP_ITERATION_NS}")
            else:  # a loop that plays nothing: the core's computation is what moves time on
                self.emit(f"_c += {LOOP_ITERATION_NS}")
                self.emit("if _c > _mt: raise _Stop")
        self.core_clock_synced, self.core_clock_stamp = False, None
        outer_pending = set(self.pending)
        for statement in statements:
            kind = statement.WhichOneof("statement_oneof")
            if kind is None:
                continue
            node = getattr(statement, kind)
            handler = getattr(self, f"_st_{kind}", None)
            if handler is None:
                self.problem(getattr(node, "loc", ""), f"{_NOT_YET}: statement '{kind}'")
                continue
            if self.pending:
                # A pause, or a loop, is where a simulation may stop: what comes before it is measured and saved by then.
                everything = self._contains([statement], ("pause", "for", "forEach"))
                mentioned = self._variables_in(statement) | ({_STREAM + node.tag} if kind == "save" else set())
                hit = [i for i, (names, _) in self.pending.items() if everything or not names.isdisjoint(mentioned)]
                if kind == "save" and len(hit) == 1 and not everything:
                    # saving a result does not need it yet: the save goes with the acquisition, stamped now
                    self._st_save(node, defer=hit[0])
                    continue
                self._acquire(hit)
            handler(node)
            if kind not in ("save", "assign"):  # it may move timelines, or sync `_c` only on one of its branches
                self.core_clock_synced, self.core_clock_stamp = False, None
            self._mark_runtime_timed([statement])
        # a block's measures acquire before it ends: a loop's next iteration, or whatever follows a branch, may read
        # their results
        self._acquire([i for i in self.pending if i not in outer_pending])

    def _variables_in(self, message) -> set[str]:
        """The QUA variables a program message names, nested messages included."""
        return {name for name in _names_in(message) if name in self.vars}

    def _acquire(self, indices) -> None:
        for index in indices:
            for line in self.pending.pop(index)[1]:
                self.emit(line)

    def _implicit_align(self, elements: set[str]) -> None:
        names = self.layout.vars_for(elements)
        handoff = not self.runtime_timed.isdisjoint(names)
        lines = self.layout.align(elements, handoff)
        if lines and handoff:
            self.runtime_timed.update(names)  # all of them now wait on a run-time time
        for line in lines:
            self.emit(line)

    def _loop_align(self, elements: set[str], body) -> None:
        """The align at the start of every iteration. The body may make some timelines run-time timed, and from the
        second iteration on that align is then a hand-off: the walk looks through the body first for that."""
        before = set(self.runtime_timed)
        self._mark_runtime_timed(body)
        names = self.layout.vars_for(elements)
        if not self.runtime_timed.isdisjoint(names):
            self.runtime_timed.update(names)
        else:
            self.runtime_timed = before
        self._implicit_align(elements)

    def _mark_runtime_timed(self, statements) -> None:
        """Note the timelines that `statements` leave at a run-time time: a branch on a run-time value, a run-time
        duration, a wait for a trigger or a resume."""
        for statement in statements:
            kind = statement.WhichOneof("statement_oneof")
            node = getattr(statement, kind) if kind else None
            if kind in ("waitForTrigger", "pause") or (kind == "if" and not self._constant_condition(node)):
                names = self._element_names(node.qe) if kind == "waitForTrigger" else (
                    self.all_elements if kind == "pause" else self._elements_of(
                        [s for body in self._bodies("if", node) for s in body]))
                self.runtime_timed.update(self.layout.vars_for([n for n in names if n in self.config.elements]))
            elif kind in ("play", "wait") and self._runtime_duration(node):
                names = [node.qe.name] if kind == "play" else (self._element_names(node.qe) or self.all_elements)
                self.runtime_timed.update(self.layout.vars_for([n for n in names if n in self.config.elements]))
            for body in self._bodies(kind, node):
                self._mark_runtime_timed(body)

    def _constant_condition(self, node) -> bool:
        conditions = [node.condition] + [e.condition for e in node.elseifs]
        return all(c.WhichOneof("expression_oneof") == "literal" for c in conditions)

    def _runtime_duration(self, node) -> bool:
        fields = ("time",) if hasattr(node, "time") else ("duration", "truncate")
        return any(node.HasField(f) and getattr(node, f).WhichOneof("expression_oneof") != "literal" for f in fields)

    def _contains(self, statements, wanted: tuple[str, ...]) -> bool:
        """Whether a statement of one of the kinds `wanted` is among `statements`, at any depth (one walk)."""
        for statement in statements:
            kind = statement.WhichOneof("statement_oneof")
            if kind in wanted:
                return True
            node = getattr(statement, kind) if kind else None
            if any(self._contains(body, wanted) for body in self._bodies(kind, node)):
                return True
        return False

    # -------------------------------------------------------------------------------------- control flow

    def _st_if(self, node) -> None:
        self._implicit_align(set().union(*(self._elements_of(body) for body in self._bodies("if", node))))
        branches = [(node.condition, node.body.statements, node.loc)]
        branches += [(e.condition, e.body.statements, e.loc or node.loc) for e in node.elseifs]
        for i, (condition, body, loc) in enumerate(branches):
            cond = self.as_bool(self.expr(condition, loc), loc)
            self.emit(f"{'if' if i == 0 else 'elif'} {cond.src}:")
            self.depth += 1
            self._block(body, None)
            self.depth -= 1
        else_body = getattr(node, "else").statements
        if len(else_body):
            self.emit("else:")
            self.depth += 1
            self._block(else_body, None)
            self.depth -= 1

    def _st_for(self, node) -> None:
        loc = node.loc
        for statement in node.init.statements:
            self._st_assign(statement.assign)
        elements = self._elements_of(node.body.statements)
        self._implicit_align(elements)
        has_condition = node.HasField("condition")
        cond = self.as_bool(self.expr(node.condition, loc), loc) if has_condition else _Expr("True", BOOL, True)
        self.emit(f"while {cond.src}:")
        self.depth += 1
        self._loop_align(elements, node.body.statements)
        self.loop_counts.append(self._iterations(node, loc))
        self._block(node.body.statements, elements)
        self.loop_counts.pop()
        for statement in node.update.statements:
            self._st_assign(statement.assign)
        self.depth -= 1

    def _iterations(self, node, loc: str) -> int | None:
        """How many times a for_ runs when its start, bound and step are literals (`for_(i, 0, i < n, i + 1)`, the
        form `auto_reshape()` reads the program's structure from); None otherwise."""
        if len(node.init.statements) != 1 or len(node.update.statements) != 1 or not node.HasField("condition"):
            return None
        init, update = node.init.statements[0].assign, node.update.statements[0].assign
        name = _assigned_name(init)
        if name is None or name != _assigned_name(update) or name not in self.vars:
            return None
        var = self.vars[name]
        condition = node.condition.binaryOperation if node.condition.WhichOneof("expression_oneof") == \
            "binaryOperation" else None
        step = update.expression.binaryOperation if update.expression.WhichOneof("expression_oneof") == \
            "binaryOperation" else None
        if condition is None or step is None or condition.op not in (LT, LET, GT, GET) or step.op not in (ADD, SUB):
            return None
        if _variable_name(condition.left) != name or _variable_name(step.left) != name:
            return None
        start, bound, delta = (self._literal_of(e, var.type, loc)
                               for e in (init.expression, condition.right, step.right))
        if start is None or bound is None or not delta:
            return None
        delta = delta if step.op == ADD else -delta
        if condition.op in (LT, LET) and delta > 0:
            span = bound - start + (1 if condition.op == LET else 0)
        elif condition.op in (GT, GET) and delta < 0:
            span = start - bound + (1 if condition.op == GET else 0)
            delta = -delta
        else:
            return None
        return max(0, -(-span // delta))

    def _literal_of(self, node, kind: str, loc: str) -> int | None:
        """A literal's value in a variable's representation (fixed as raw words), or None if not a literal."""
        if node.WhichOneof("expression_oneof") != "literal":
            return None
        return self.convert(self.expr(node, loc, want=kind), kind, loc).const

    def _st_forEach(self, node) -> None:
        loc = node.loc
        pairs = []
        for it in node.iterator:
            var = self._var(it.variable.name, loc, scalar=True)
            array = self._var(it.array.name, loc, array=True)
            if var and array:
                if var.type != array.type:
                    self.problem(loc, f"for_each_ variable '{var.name}' is {var.type} but array "
                                      f"'{array.name}' is {array.type}")
                pairs.append((var, array))
        if not pairs:
            return
        elements = self._elements_of(node.body.statements)
        self._implicit_align(elements)
        index = self.fresh("i")
        self.emit(f"for {index} in range({min(a.size for _, a in pairs)}):")
        self.depth += 1
        for var, array in pairs:
            self.emit(f"{var.local} = {array.local}[{index}]")
        self._loop_align(elements, node.body.statements)
        self.loop_counts.append(min(a.size for _, a in pairs))
        self._block(node.body.statements, elements)
        self.loop_counts.pop()
        self.depth -= 1

    def _st_strictTiming(self, node) -> None:
        self.emit("if True:")  # a block of its own keeps statement counting uniform
        self.depth += 1
        self._block(node.body.statements, None)
        self.depth -= 1

    # ----------------------------------------------------------------------------------------- variables

    def _st_assign(self, node) -> None:
        loc = node.loc
        target = node.target if node.HasField("target") else None
        if target is not None and target.HasField("arrayCell"):
            cell = target.arrayCell
            array = self._var(cell.arrayVar.name, loc, array=True)
            if array is None:
                return
            value = self.convert(self.expr(node.expression, loc, want=array.type), array.type, loc)
            self.emit(f"{self._cell(array, cell.index, loc, write=True)} = {value.src}")
            return
        ref = target.variable if target is not None else node.variable
        if ref.ioNumber:
            value = self.expr(node.expression, loc)
            self.emit(f"_set_io({ref.ioNumber}, {self.to_python(value)})")
            return
        var = self._var(ref.name, loc, scalar=True)
        if var is None:
            return
        value = self.convert(self.expr(node.expression, loc, want=var.type), var.type, loc)
        self.emit(f"{var.local} = {value.src}")

    def _st_save(self, node, defer: int | None = None) -> None:
        """`defer`: the pending measure (see `_st_measure`) this save waits for."""
        loc = node.loc
        source = node.source if node.HasField("source") else None
        if source is not None and source.HasField("literal"):
            value = self._literal_expr(source.literal, loc)
        elif source is not None and source.HasField("arrayCell"):
            value = self._array_cell(source.arrayCell, loc)
        else:
            ref = source.variable if source is not None else node.variable
            value = self._variable_ref(ref, loc)
        if value is None:
            return
        self._stream_kind(node.tag, value.type, loc)
        self.save_loops.setdefault(node.tag, set()).add(tuple(self.loop_counts))
        # the core reaches the save once its pulses so far are queued and its computation is done
        timelines = self.layout.vars_for(self.all_elements)
        if self.core_clock_synced:
            pass
        elif len(timelines) <= 2:
            self.core_clock_stamp = None
            for t in timelines:
                self.emit(f"if {t} > _c: _c = {t}")
        else:
            self.core_clock_stamp = None
            self.emit(f"_c = max(_c, {', '.join(timelines)})")
        self.core_clock_synced = True
        if defer is None:
            self.emit(f"_save({node.tag!r}, {value.type!r}, {self.to_python(value)}, _c)")
            return
        stamp = self.core_clock_stamp
        if stamp is None:
            stamp = self.core_clock_stamp = self.fresh("s")
            self.emit(f"{stamp} = _c")
        names, lines = self.pending[defer]
        names |= self._variables_in(node) | {_STREAM + node.tag}  # a later save to the stream keeps its order
        lines.append(f"_save({node.tag!r}, {value.type!r}, {self.to_python(value)}, {stamp})")

    def _stream_kind(self, tag: str, kind: str, loc: str) -> None:
        known = self.stream_kinds.setdefault(tag, kind)
        if known != kind:
            self.problem(loc, f"stream '{tag}' receives both {known} and {kind} values")

    def _now(self) -> str:
        names = self.layout.vars_for(self.all_elements)
        return max_expr(names) if names else str(PROGRAM_START_NS)

    def _st_pause(self, node) -> None:
        # pause halts the whole program: every element resumes together (QM docs, features.md "Pause")
        self._implicit_align(set(self.all_elements))
        self.emit(f"_pause({self._now()})")  # where the program's time stands (a realtime job waits for it)

    def _st_advanceInputStream(self, node) -> None:
        loc = node.loc
        name = node.streamArray.name if node.HasField("streamArray") else node.streamVariable.name
        var = self.vars.get(name)
        if var is None:
            self.problem(loc, f"unknown variable '{name}'")
            return
        if not var.input_stream:
            self.problem(loc, f"advance_input_stream on '{name}', which is not declared with declare_input_stream")
            return
        if var.is_array:
            self.emit(f"{var.local}[:] = [_from_py(_v, {var.type!r}) for _v in "
                      f"_read_input_stream({var.name!r}, {var.size}, {self._now()})]")
        else:
            self.emit(f"{var.local} = _from_py(_read_input_stream({var.name!r}, 1, {self._now()})[0], "
                      f"{var.type!r})")

    # -------------------------------------------------------------------------------------------- timing

    def _element(self, name: str, loc: str) -> bool:
        if name not in self.config.elements:
            known = ", ".join(sorted(self.config.elements))
            self.problem(loc, f"unknown element '{name}' (the config has: {known})")
            return False
        return True

    def _st_wait(self, node) -> None:
        loc = node.loc
        names = self._element_names(node.qe) or self.all_elements
        names = [n for n in names if self._element(n, loc)]
        duration = self.convert(self.expr(node.time, loc, want=INT), INT, loc)
        if duration.const is not None:
            if duration.const < 0:
                self.problem(loc, f"wait duration {duration.const} is negative")
            step = str(CLOCK_NS * duration.const)
        else:
            step = self.fresh("w")
            self.emit(f"{step} = {CLOCK_NS} * {duration.src}")
            self.emit(f"if {step} < 0: {step} = 0")
        for t in self.layout.vars_for(names):
            self.emit(f"{t} += {step}")

    def _st_align(self, node) -> None:
        names = self._element_names(node.qe) or self.all_elements
        self._implicit_align({n for n in names if self._element(n, node.loc)})

    def _st_waitForTrigger(self, node) -> None:
        # The element waits for the trigger's edge (the job's trigger source, engine/runtime.py) and resumes
        # TRIGGER_RESPONSE_NS after it. The pulse "must be a constant pulse" (qm.qua.wait_for_trigger docstring) and
        # "will be played continuously until the arrival of the trigger signal" (Guides/external_trigger): until the
        # element resumes. The time tag is "the time at which the trigger arrived relative to the waiting start
        # time. In ns." (docstring).
        target = None
        if node.HasField("timeTagTarget"):
            target = self._var(node.timeTagTarget.name, node.loc, scalar=True)
        for name in self._element_names(node.qe):
            if not self._element(name, node.loc):
                continue
            t = self.layout.var(name)
            arrival = self.fresh("a")
            self.emit(f"{arrival} = _trigger({t})")
            if node.HasField("pulseToPlay"):
                pulse = self._constant_pulse(name, node.pulseToPlay.name, node.loc)
                if pulse is not None:
                    # in a simulation, where no trigger comes, it plays to the end of the duration
                    self.emit_event(f"_ev(_PlayEvent({name!r}, {node.pulseToPlay.name!r}, {pulse.name!r}, {t}, "
                                    f"max(min({arrival} + {TRIGGER_RESPONSE_NS}, _mt) - {t}, 0), None, "
                                    f"{self._freq_src(name)}, "
                                    f"{self._phase_src(name, t)}, (), (), None, False, {self._correction_src(name)}, "
                                    f"{self._frame_src(name)}))")
            if target is not None:
                self.emit(f"{target.local} = {arrival} - {t}")
            self.emit(f"{t} = {arrival} + {TRIGGER_RESPONSE_NS}")

    # ----------------------------------------------------------------------------------- oscillator state

    def _freq_src(self, element: str) -> str:
        i = self.dynamic_phase.get(element)
        return f"F{i}" if i is not None else repr(float(self.config.elements[element].intermediate_frequency))

    def _phase_src(self, element: str, time_src: str) -> str:
        """Oscillator phase (cycles, in [0, 1)) of `element` at `time_src` ns."""
        i = self.dynamic_phase.get(element)
        if i is None:
            # oscillators start with the program: phase 0 at its first instruction
            rate = float(self.config.elements[element].intermediate_frequency) * 1e-9
            return f"({rate!r} * (({time_src}) - {PROGRAM_START_NS})) % 1.0" if rate else "0.0"
        return f"(P{i} + F{i} * 1e-9 * (({time_src}) - R{i}) + Z{i}) % 1.0"

    def _frame_src(self, element: str) -> str:
        """The element's frame rotation (cycles): frame_rotation and co. since its last frame reset."""
        i = self.dynamic_phase.get(element)
        return f"Z{i}" if i is not None else "0.0"

    def _st_updateFrequency(self, node) -> None:
        loc, name = node.loc, node.qe.name
        if not self._element(name, loc):
            return
        value = self.expr(node.value, loc, want=INT)
        if value.type == BOOL:
            self.problem(loc, "update_frequency needs an int frequency, got a bool")
            return
        hz = f"({self.to_python(value)}) * {_FREQ_UNITS.get(node.units, 1.0)!r}"
        i = self.dynamic_phase[name]
        if node.keepPhase:  # continuous phase: the new frequency starts from the phase reached now
            t = self.layout.var(name)
            self.emit(f"P{i} = (P{i} + F{i} * 1e-9 * ({t} - R{i})) % 1.0; R{i} = {t}")
        self.emit(f"F{i} = float({hz})")
        if name in self.dynamic_correction:
            # "Make sure to update the correction after you called update_frequency" (qm.qua.update_correction
            # docstring): a new frequency brings back the config's mixer matrix.
            self.emit(f"C{self.dynamic_correction[name]} = None")

    def _st_updateCorrection(self, node) -> None:
        loc, name = node.loc, node.qe.name
        if not self._element(name, loc):
            return
        if self.config.elements[name].mixed_inputs is None:
            self.problem(loc, f"update_correction on element '{name}', which has no mixInputs (only an IQ element "
                              f"goes through a mixer correction)")
            return
        values = []
        for key in ("c0", "c1", "c2", "c3"):
            value = self.convert(self.expr(getattr(node.correction, key), loc, want=FIXED), FIXED, loc)
            if value.const is not None and not correction_in_range(fx.fixed_to_float(value.const)):
                self.problem(loc, f"correction value {fx.fixed_to_float(value.const)} is outside the range "
                                  f"{CORRECTION_RANGE}")
            values.append(self._fold(_Expr(f"_correction({value.src})", FIXED), loc).src)
        # the frame reset that comes with it (see _PHASE_STATEMENTS)
        self.emit(f"C{self.dynamic_correction[name]} = ({', '.join(values)}); Z{self.dynamic_phase[name]} = 0.0")

    def _correction_src(self, element: str) -> str:
        """The event argument for the element's mixer correction (None: the config's). An `update_correction` the
        program ran comes first, then one the user set on the running job (`job.set_element_correction`)."""
        if self.config.elements[element].mixed_inputs is None:
            return "None"
        i = self.dynamic_correction.get(element)
        job_level = f"_corr.get({element!r})"
        return job_level if i is None else f"(C{i} if C{i} is not None else {job_level})"

    def _st_zRotation(self, node) -> None:
        loc, name = node.loc, node.qe.name
        if not self._element(name, loc):
            return
        value = self.convert(self.expr(node.value, loc, want=FIXED), FIXED, loc)
        i = self.dynamic_phase[name]
        self.emit(f"Z{i} = (Z{i} + {value.src} * {fx.SCALE!r}) % 1.0")

    def _st_fastFrameRotation(self, node) -> None:
        loc, name = node.loc, node.qe.name
        if not self._element(name, loc):
            return
        c = self.convert(self.expr(node.cosine, loc, want=FIXED), FIXED, loc)
        s = self.convert(self.expr(node.sine, loc, want=FIXED), FIXED, loc)
        i = self.dynamic_phase[name]
        self.emit(f"Z{i} = (Z{i} + _atan2({s.src}, {c.src}) / {2 * math.pi!r}) % 1.0")

    def _st_resetFrame(self, node) -> None:
        if self._element(node.qe.name, node.loc):
            self.emit(f"Z{self.dynamic_phase[node.qe.name]} = 0.0")

    def _st_resetPhase(self, node) -> None:
        if self._element(node.qe.name, node.loc):
            self._reset_phase(node.qe.name)

    def _st_resetGlobalPhase(self, node) -> None:
        for name in self.all_elements:
            self._reset_phase(name)

    def _reset_phase(self, name: str) -> None:
        # reset_if_phase: the next pulse starts at absolute phase zero (qm.qua.reset_if_phase docstring); the
        # element's timeline position stands for "the next play or align on the element".
        i, t = self.dynamic_phase[name], self.layout.var(name)
        self.emit(f"P{i} = 0.0; R{i} = {t}")
        self.emit_event(f"_ev(_PhaseResetEvent({name!r}, {t}))")

    # --------------------------------------------------------------------------------------- play & co.

    def _operation_pulse(self, element: str, operation: str, loc: str):
        el = self.config.elements[element]
        if operation not in el.operations:
            known = ", ".join(sorted(el.operations)) or "none"
            self.problem(loc, f"operation '{operation}' is not defined for element '{element}' (it has: {known})")
            return None
        pulse = self.config.pulses.get(el.operations[operation])
        if pulse is None:
            self.problem(loc, f"pulse '{el.operations[operation]}' of operation '{operation}' is not in the config")
            return None
        for waveform_name in pulse.waveforms.values():
            waveform = self.config.waveforms.get(waveform_name)
            if waveform is not None and waveform.is_overridable:
                self.overridable[waveform_name] = int(waveform.samples.size)
        return pulse

    def _constant_pulse(self, element: str, operation: str, loc: str):
        """The pulse of `operation`, which must have only constant waveforms (None after a problem)."""
        pulse = self._operation_pulse(element, operation, loc)
        if pulse is None:
            return None
        arbitrary = [w for w in pulse.waveforms.values()
                     if w in self.config.waveforms and not self.config.waveforms[w].is_constant]
        if arbitrary:
            self.problem(loc, f"wait_for_trigger plays operation '{operation}' of element '{element}' while waiting, "
                              f"which needs a constant pulse, but pulse '{pulse.name}' has the arbitrary waveform "
                              f"'{arbitrary[0]}'")
            return None
        return pulse

    def _amp(self, node, loc: str) -> str:
        if not node.HasField("amp"):
            return "None"
        amp = node.amp
        values = [self.to_float(self.expr(amp.v0, loc, want=FIXED))]
        if amp.HasField("v1"):
            values += [self.to_float(self.expr(getattr(amp, f"v{k}"), loc, want=FIXED)) for k in (1, 2, 3)]
            return f"({', '.join(values)})"
        return f"({values[0]}, 0.0, 0.0, {values[0]})"

    def _st_play(self, node) -> None:
        loc, name = node.loc, node.qe.name
        if not self._element(name, loc):
            return
        t = self.layout.var(name)
        ramp_slope = "None"
        if node.HasField("rampPulse"):
            operation = pulse_name = ""
            length_const: int | None = None
            ramp_slope = self.to_float(self.expr(node.rampPulse.value, loc, want=FIXED))
            if not node.HasField("duration"):
                self.problem(loc, "play(ramp(...)) needs a duration")
                return
        else:
            operation = node.namedPulse.name if node.HasField("namedPulse") else node.pulse.name
            pulse = self._operation_pulse(name, operation, loc)
            if pulse is None:
                return
            pulse_name, length_const = pulse.name, pulse.length
        length = self._play_length(node, length_const, loc)
        amp = self._amp(node, loc)
        chirp_rates, chirp_times = self._chirp(node, loc)
        start = self.fresh("t")
        self.emit(f"{start} = {t}")
        if node.timestampLabel:
            self._timestamp(node.timestampLabel, start, loc)
        event = (f"_ev(_PlayEvent({name!r}, {operation!r}, {pulse_name!r}, {start}, {length}, {amp}, "
                 f"{self._freq_src(name)}, {self._phase_src(name, start)}, {chirp_rates}, {chirp_times}, "
                 f"{ramp_slope}, False, {self._correction_src(name)}, {self._frame_src(name)}))")
        if node.HasField("condition"):
            cond = self.as_bool(self.expr(node.condition, loc), loc)
            # a conditional play takes its time whether or not it plays (qm.qua.play docstring)
            flag = self.fresh("c")
            self.emit(f"{flag} = {cond.src}")  # evaluated in both variants: it may draw random numbers
            self.emit_event(f"if {flag}: {event}")
        else:
            self.emit_event(event)
        self.emit(f"{t} = {start} + {length}")

    def _play_length(self, node, pulse_length: int | None, loc: str) -> str:
        if node.HasField("duration"):
            duration = self.convert(self.expr(node.duration, loc, want=INT), INT, loc)
            if duration.const is not None:
                if duration.const < 0:
                    self.problem(loc, f"duration {duration.const} is negative")
                length = str(CLOCK_NS * max(duration.const, 0))
            else:
                length = self.fresh("d")
                self.emit(f"{length} = {CLOCK_NS} * {duration.src}")
                self.emit(f"if {length} < 0: {length} = 0")
        else:
            length = str(pulse_length)
        if node.HasField("truncate"):
            truncate = self.convert(self.expr(node.truncate, loc, want=INT), INT, loc)
            if truncate.const is not None and length.isdigit():  # both known: fold, as a constant duration is
                return str(min(int(length), CLOCK_NS * max(truncate.const, 0)))
            limited = self.fresh("d")
            self.emit(f"{limited} = min({length}, {CLOCK_NS} * max({truncate.src}, 0))")
            length = limited
        return length

    def _chirp(self, node, loc: str) -> tuple[str, str]:
        if not node.HasField("chirp"):
            return "()", "()"
        chirp = node.chirp
        factor = _CHIRP_UNITS.get(chirp.units, 1.0)
        if chirp.HasField("arrayRate"):
            array = self._var(chirp.arrayRate.name, loc, array=True)
            if array is None:
                return "()", "()"
            item = "_c * 1.0" if array.type == INT else f"_c * {fx.SCALE!r}"
            rates = f"tuple({item} * {factor!r} for _c in {array.local})"
        else:
            rate = self.expr(chirp.scalarRate, loc, want=INT)
            rates = f"(({self.to_python(rate)}) * {factor!r},)"
        # chirp segment times are in clock cycles, like every QUA time argument
        times = tuple(CLOCK_NS * int(x) for x in chirp.times)
        return rates, repr(times)

    def _timestamp(self, label: str, start: str, loc: str) -> None:
        # timestamp_stream: the start of the command in clock cycles (features.md), from the one origin of all times
        # (timing.PROGRAM_START_NS)
        self._stream_kind(label, INT, loc)
        self.emit(f"_save({label!r}, 'int', {start} // {CLOCK_NS}, {start})")

    def _st_setDcOffset(self, node) -> None:
        loc, name = node.loc, node.qe.name
        if not self._element(name, loc):
            return
        element = self.config.elements[name]
        keys = {"single"} if element.single_input else ({"I", "Q"} if element.mixed_inputs else
                                                         set(element.multiple_inputs))
        if node.qeInputReference not in keys:
            self.problem(loc, f"element '{name}' has no input '{node.qeInputReference}' (it has: "
                              f"{', '.join(sorted(keys))})")
            return
        value = self.to_float(self.expr(node.offset, loc, want=FIXED))
        self.emit_event(f"_ev(_DcOffsetEvent({name!r}, {node.qeInputReference!r}, {self.layout.var(name)}, "
                        f"{value}))")

    def _st_rampToZero(self, node) -> None:
        loc, name = node.loc, node.qe.name
        if not self._element(name, loc):
            return
        element = self.config.elements[name]
        if element.sticky is None:
            self.problem(loc, f"ramp_to_zero on element '{name}', which is not sticky")
            return
        duration = CLOCK_NS * node.duration.value if node.HasField("duration") else element.sticky.duration
        t = self.layout.var(name)
        self.emit_event(f"_ev(_RampToZeroEvent({name!r}, {t}, {duration}))")
        self.emit(f"{t} += {duration}")

    # ------------------------------------------------------------------------------------------- measure

    def _st_measure(self, node) -> None:
        loc, name = node.loc, node.qe.name
        if not self._element(name, loc):
            return
        element = self.config.elements[name]
        pulse = self._operation_pulse(name, node.pulse.name, loc)
        if pulse is None:
            return
        if not pulse.is_measurement:
            self.problem(loc, f"measure needs a measurement pulse, but operation '{node.pulse.name}' of element "
                              f"'{name}' plays control pulse '{pulse.name}'")
            return
        if not element.outputs and not element.digital_outputs:
            self.problem(loc, f"measure on element '{name}', which has no outputs nor digitalOutputs")
            return
        if len(node.outputs):
            # qm-qua 1.4 never fills this field: it sends measure's tuple form, (iw, target) or
            # (iw, output, target), as demod.full processes (qm/qua/_dsl/measure/measure.py).
            self.problem(loc, f"{_NOT_YET}: the legacy MeasureStatement 'outputs' field (write demod.full(...))")
            return
        processes: list[ProcessSpec] = []
        digital: list[DigitalProcess] = []
        targets: list[tuple] = []
        digital_targets: list[tuple] = []
        for process in node.measureProcesses:
            if process.WhichOneof("process") == "digital":
                parsed = self._digital_process(process.digital, element, loc)
                kept, kept_targets = digital, digital_targets
            else:
                parsed = self._measure_process(process, element, pulse, loc)
                kept, kept_targets = processes, targets
            if parsed is not None:
                kept.append(parsed[0])
                kept_targets.append(parsed[1])
        targets += digital_targets  # the acquirer returns the digital results after the analog ones
        if node.streamAs:
            if not element.outputs:
                self.problem(loc, f"raw ADC stream of element '{name}', which has no analog 'outputs'")
            self._stream_kind(node.streamAs, ADC, loc)
        offsets = {(p.controller, p.number): self.config.port(p).offset for p in element.outputs.values()
                   if p.controller in self.config.controllers and p in self.config.controllers[p.controller].ports}
        # Crosstalk and output filters delay every output; the QOP adds that delay to the time of flight too.
        time_of_flight = element.time_of_flight + alignment_delay_ns(self.config)
        spec = MeasureSpec(
            element=name,
            time_of_flight=time_of_flight,
            smearing=element.smearing,
            pulse_length=pulse.length,
            processes=tuple(processes),
            adc_tag=node.streamAs or None,
            adc_ports=tuple((p.controller, p.number) for _, p in sorted(element.outputs.items())),
            offsets=offsets,
            digital=tuple(digital),
        )
        index = len(self.measures)
        self.measures.append(spec)
        t = self.layout.var(name)
        start = self.fresh("t")
        self.emit(f"{start} = {t}")
        if node.timestampLabel:
            self._timestamp(node.timestampLabel, start, loc)
        amp = self._amp(node, loc)
        self.emit_event(f"_ev(_PlayEvent({name!r}, {node.pulse.name!r}, {pulse.name!r}, {start}, {pulse.length}, "
                        f"{amp}, {self._freq_src(name)}, {self._phase_src(name, start)}, (), (), None, True, "
                        f"{self._correction_src(name)}, {self._frame_src(name)}))")
        acquire_length = max([p.length for p in processes] + [p.window for p in digital] + [pulse.length])
        self.emit_event(f"_ev(_AcquisitionEvent({name!r}, {start} + {time_of_flight}, {acquire_length}, "
                        f"{_process_names(node)!r}))")
        self.emit(f"{t} = {start} + {pulse.length}")
        if not processes and not digital and not node.streamAs:
            return
        # The acquisition waits until the program mentions what it writes (or the block ends): statements in between
        # may play, on other elements, pulses that reach the input during the window although they come later in the
        # program (elements run in parallel), and a loopback must see them. Its start, phase and IF are taken now.
        result, window = self.fresh("r"), self.fresh("p")
        phase = self._phase_src(name, f"{start} + {time_of_flight}")
        self.emit(f"{window} = ({start}, {phase}, {self._freq_src(name)})")
        lines = [f"{result} = _M[{index}](*{window})"]
        for i, target in enumerate(targets):
            if target[0] == "scalar":
                lines.append(f"{target[1]} = {result}[{i}]")
            elif target[0] == "tags":  # as many tags as fit the array; the count says how many were written
                lines.append(f"_tags = {result}[{i}][:{target[2]}]")
                lines.append(f"{target[1]}[:len(_tags)] = _tags")
                if target[3]:
                    lines.append(f"{target[3]} = len(_tags)")
            else:
                lines.append(f"{target[1]}[:{target[2]}] = {result}[{i}]")
        self.pending[index] = (self._variables_in(node), lines)

    def _measure_process(self, process, element, pulse, loc: str):
        if not element.outputs:
            self.problem(loc, f"analog measure process on element '{element.name}', which has no analog 'outputs' "
                              f"(only digitalOutputs)")
            return None
        analog = process.analog
        kind = analog.WhichOneof("process")
        node = getattr(analog, kind)
        if kind in ("rawTimeTagging", "highResTimeTagging"):
            return self._time_tagging(node, element, kind == "highResTimeTagging", loc)
        demodulated = kind in ("demodIntegration", "dualDemodIntegration")
        if kind in ("demodIntegration", "bareIntegration"):
            pairs = [(node.integration.name, node.elementOutput)]
        else:
            pairs = [(node.integration1.name, node.elementOutput1), (node.integration2.name, node.elementOutput2)]
        terms = []
        for weight_name, output in pairs:
            term = self._term(weight_name, output, element, pulse, loc)
            if term is None:
                return None
            terms.append(term)
        target = node.target
        if target.HasField("vectorProcess"):
            vector = target.vectorProcess
            division_kind = vector.timeDivision.WhichOneof("timeDivision")
            div = getattr(vector.timeDivision, division_kind)
            if div.samplesPerChunk <= 0:
                self.problem(loc, "the chunk size of a sliced / accumulated / moving-window process must be > 0")
                return None
            if division_kind == "movingWindow":
                division: tuple = ("moving_window", div.samplesPerChunk, div.chunksPerWindow)
            else:
                division = (division_kind, div.samplesPerChunk)
            spec = ProcessSpec(demodulated, tuple(terms), division)
            array = self._var(vector.array.name, loc, array=True)
            if array is None:
                return None
            if array.type != FIXED:
                self.problem(loc, f"measure target array '{array.name}' must be fixed, not {array.type}")
                return None
            count = spec.result_count()
            if count > array.size:
                self.problem(loc, f"measure writes {count} results but array '{array.name}' has {array.size} cells")
                return None
            return spec, ("vector", array.local, count)
        scalar = target.scalarProcess
        spec = ProcessSpec(demodulated, tuple(terms))
        if scalar.HasField("arrayCell"):
            array = self._var(scalar.arrayCell.arrayVar.name, loc, array=True)
            if array is None:
                return None
            if array.type != FIXED:
                self.problem(loc, f"measure target array '{array.name}' must be fixed, not {array.type}")
                return None
            return spec, ("scalar", self._cell(array, scalar.arrayCell.index, loc, write=True))
        var = self._var(scalar.variable.name, loc, scalar=True)
        if var is None:
            return None
        if var.type != FIXED:
            self.problem(loc, f"measure target '{var.name}' must be a fixed variable, not {var.type}")
            return None
        return spec, ("scalar", var.local)

    def _time_tagging(self, node, element, high_res: bool, loc: str):
        params = element.output_pulse
        if params is None:
            self.problem(loc, f"time tagging on element '{element.name}', which has no outputPulseParameters")
            return None
        output = node.elementOutput or sorted(element.outputs)[0]
        port = element.outputs.get(output)
        target = self._tags_target(node, loc)
        if port is None:
            self.problem(loc, f"element '{element.name}' has no output '{output}'")
            return None
        if target is None:
            return None
        # high_res tags are in ps (qm.qua time_tagging.high_res docstring); the ADC resolves 1 ns
        tagging = (params.signal_threshold, params.descending, int(node.maxTime), 1000 if high_res else 1)
        spec = ProcessSpec(False, (Term(port.controller, port.number, _EMPTY, _EMPTY),), tagging=tagging)
        return spec, target

    def _tags_target(self, node, loc: str) -> tuple | None:
        """Where a time tagging process writes: as many tags as fit its int array, and their number."""
        array = self._var(node.target.name, loc, array=True)
        count = self._var(node.targetLen.name, loc, scalar=True) if node.HasField("targetLen") else None
        if array is None or (node.HasField("targetLen") and count is None):
            return None
        if array.type != INT or (count is not None and count.type != INT):
            self.problem(loc, "time tagging writes ints: its target array and count must be int")
            return None
        return "tags", array.local, array.size, count.local if count else None

    def _digital_process(self, node, element, loc: str):
        """`counting.digital` / `time_tagging.digital`: pulses on the controller digital inputs that the element's
        `digitalOutputs` name, detected as those ports' threshold, polarity and deadtime set."""
        kind = node.WhichOneof("process")
        body = getattr(node, kind)
        names = (list(body.elementOutputs) or [""]) if kind == "counting" else [body.elementOutput]
        inputs = []
        for output in names:
            port = self._digital_output(element, output, loc)
            if port is None:
                return None
            declared = self.config.port(port)
            inputs.append(DigitalInput(port.controller, port.number, float(declared.threshold),
                                       declared.polarity == "falling", int(declared.deadtime)))
        if body.maxTime <= 0:
            self.problem(loc, f"the max_time of a digital measure process must be > 0 ns, got {body.maxTime}")
            return None
        if kind == "counting":
            var = self._var(body.target.name, loc, scalar=True)
            if var is None:
                return None
            if var.type != INT:
                self.problem(loc, f"counting writes an int: its target '{var.name}' must be int, not {var.type}")
                return None
            return DigitalProcess(tuple(inputs), int(body.maxTime), True), ("scalar", var.local)
        target = self._tags_target(body, loc)
        if target is None:
            return None
        return DigitalProcess(tuple(inputs), int(body.maxTime), False), target

    def _digital_output(self, element, output: str, loc: str):
        outputs = element.digital_outputs
        known = ", ".join(sorted(outputs)) or "none"
        if not output:
            if len(outputs) != 1:
                self.problem(loc, f"element '{element.name}' has {len(outputs)} digitalOutputs ({known}): name the "
                                  f"one to read")
                return None
            output = next(iter(outputs))
        port = outputs.get(output)
        if port is None:
            self.problem(loc, f"element '{element.name}' has no digital output '{output}' (its digitalOutputs: "
                              f"{known})")
        return port

    def _term(self, weight_name: str, output: str, element, pulse, loc: str) -> Term | None:
        if weight_name not in pulse.integration_weights:
            known = ", ".join(sorted(pulse.integration_weights)) or "none"
            self.problem(loc, f"integration weights '{weight_name}' are not defined for pulse '{pulse.name}' "
                              f"(it has: {known})")
            return None
        weights = self.config.integration_weights.get(pulse.integration_weights[weight_name])
        if weights is None:
            self.problem(loc, f"integration weights '{pulse.integration_weights[weight_name]}' are not in the config")
            return None
        if not output:
            output = sorted(element.outputs)[0]
        port = element.outputs.get(output)
        if port is None:
            self.problem(loc, f"element '{element.name}' has no output '{output}' (it has: "
                              f"{', '.join(sorted(element.outputs))})")
            return None
        cosine, sine = weights.as_arrays()
        return Term(port.controller, port.number, cosine, sine)

    # --------------------------------------------------------------------------------------- expressions

    def _var(self, name: str, loc: str, scalar: bool = False, array: bool = False) -> _Var | None:
        var = self.vars.get(name)
        if var is None:
            self.problem(loc, f"unknown variable '{name}'")
            return None
        if scalar and var.is_array:
            self.problem(loc, f"'{name}' is an array, a scalar variable is needed here")
            return None
        if array and not var.is_array:
            self.problem(loc, f"'{name}' is not an array")
            return None
        return var

    def _cell(self, array: _Var, index_node, loc: str, write: bool = False) -> str:
        """`array[index]` as a read or an assignment target. A runtime index out of range goes to `_oob`, which
        reports it and gives a stand-in cell (runtime._OutOfRange): the job goes on."""
        index = self.expr(index_node, loc, want=INT)
        if index.type != INT:
            self.problem(loc, f"array index of '{array.name}' must be an int, not {index.type}")
            return f"{array.local}[0]"
        if index.const is not None:
            if not 0 <= index.const < array.size:
                self.problem(loc, f"index {index.const} is out of range for array '{array.name}' of size "
                                  f"{array.size}")
                return f"{array.local}[0]"
            return f"{array.local}[{index.const}]"
        k = self.fresh("k")
        empty = "False" if array.type == BOOL else "0"
        return (f"({array.local} if 0 <= ({k} := {index.src}) < {array.size} else "
                f"_oob({k}, {array.size}, {array.name!r}, {loc!r}, {write}, {empty}))[{k}]")

    def _variable_ref(self, ref, loc: str) -> _Expr | None:
        if ref.ioNumber:
            return _Expr(f"_get_io({ref.ioNumber})", INT, io=True)
        var = self._var(ref.name, loc, scalar=True)
        if var is None:
            return None
        return _Expr(var.local, var.type)

    def _array_cell(self, cell, loc: str) -> _Expr | None:
        array = self._var(cell.arrayVar.name, loc, array=True)
        if array is None:
            return None
        return _Expr(self._cell(array, cell.index, loc), array.type)

    def _literal_expr(self, literal, loc: str) -> _Expr:
        t = _PB_TYPES.get(literal.type, INT)
        value = self._literal_value(literal.value, t, t, literal.loc or loc)
        if t == FIXED:
            try:
                original = float(literal.value)
            except ValueError:
                original = 0.0
            return _Expr(repr(value), FIXED, value, float_literal=original)
        return _Expr(repr(value), t, value)

    def expr(self, node, loc: str, want: str | None = None) -> _Expr:
        """Compile a scalar expression; `want` is the type its context expects (Math.div and IO reads use it)."""
        kind = node.WhichOneof("expression_oneof")
        sub = getattr(node, kind) if kind else None
        loc = getattr(sub, "loc", "") or loc
        if kind == "literal":
            literal = self._literal_expr(sub, loc)
            # A float where the context wants an int (update_frequency(el, 50e6), wait(1e3)) is cast like the
            # platform does, not read as a 4.28 fixed it cannot fit in.
            return self.convert(literal, INT, loc) if want == INT and literal.float_literal is not None else literal
        if kind == "variable":
            value = self._variable_ref(sub, loc)
            if value is None:
                return _Expr("0", INT, 0)
            if value.io:
                t = want or INT
                return _Expr(f"_from_py({value.src}, {t!r})", t)
            return value
        if kind == "arrayCell":
            return self._array_cell(sub, loc) or _Expr("0", INT, 0)
        if kind == "arrayLength":
            array = self._var(sub.array.name, loc, array=True)
            return _Expr(str(array.size), INT, array.size) if array else _Expr("0", INT, 0)
        if kind == "binaryOperation":
            return self._binary(sub, loc, want)
        if kind == "libFunction":
            return self._library(sub, loc, want)
        self.problem(loc, f"{_NOT_YET}: expression '{kind}'")
        return _Expr("0", INT, 0)

    def _binary(self, node, loc: str, want: str | None) -> _Expr:
        op = node.op
        left = self.expr(node.left, loc, want=want if op not in _COMPARISONS else None)
        right = self.expr(node.right, loc, want=left.type if not left.io else None)
        if left.io:
            left = self.expr(node.left, loc, want=right.type)
        left, right = self._contextual_literals(left, right)
        if op in _COMPARISONS:
            return self._fold(self._compare(op, left, right), loc)
        if op in (SHL, SHR):
            return self._fold(self._shift(op, left, right, loc), loc)
        if op in _BITWISE:
            if left.type == BOOL and right.type == BOOL:
                return self._fold(_Expr(f"({left.src} {_BITWISE[op]} {right.src})", BOOL), loc)
            t = FIXED if FIXED in (left.type, right.type) else INT
            a, b = self.convert(left, t, loc), self.convert(right, t, loc)
            return self._fold(_Expr(f"({a.src} {_BITWISE[op]} {b.src})", t), loc)
        return self._fold(self._arith(op, left, right, loc), loc)

    def _contextual_literals(self, left: _Expr, right: _Expr) -> tuple[_Expr, _Expr]:
        """A float literal with an integral value next to an int is that int (the `n < 1e4` idiom)."""
        def as_int(e: _Expr, other: _Expr) -> _Expr:
            f = e.float_literal
            if f is not None and other.type == INT and f.is_integer() and -2**31 <= f < 2**31:
                return _Expr(str(int(f)), INT, int(f))
            return e
        return as_int(left, right), as_int(right, left)

    def _compare(self, op: int, left: _Expr, right: _Expr) -> _Expr:
        symbol = _COMPARISONS[op]
        if left.type == right.type or BOOL in (left.type, right.type) and op == EQ:
            a, b = left.src, right.src
            if left.type != right.type:  # bool == number compares truth values
                a, b = f"({a} != 0)", f"({b} != 0)"
            return _Expr(f"({a} {symbol} {b})", BOOL)
        # int against fixed: compare the exact values (the int scaled to raw words without wrap-around)
        a = f"(({left.src}) << 28)" if left.type in (INT, BOOL) else left.src
        b = f"(({right.src}) << 28)" if right.type in (INT, BOOL) else right.src
        return _Expr(f"({a} {symbol} {b})", BOOL)

    def _shift(self, op: int, left: _Expr, right: _Expr, loc: str) -> _Expr:
        if right.type != INT:
            self.problem(loc, f"shift amount must be an int, not {right.type}")
        t = INT if left.type == BOOL else left.type
        value = self.convert(left, t, loc)
        if op == SHL:
            return _Expr(fx.WRAP_SRC.format(f"_shl({value.src}, {right.src})"), t)
        return _Expr(f"_shr({value.src}, {right.src})", t)

    def _arith(self, op: int, left: _Expr, right: _Expr, loc: str) -> _Expr:
        lt = INT if left.type == BOOL else left.type
        rt = INT if right.type == BOOL else right.type
        a, b = self.convert(left, lt, loc), self.convert(right, rt, loc)
        if op == MULT and lt != rt:
            # fixed * int is exact (Cast.mul_fixed_by_int); it never goes through a lossy int -> fixed cast
            return _Expr(fx.WRAP_SRC.format(f"{a.src} * {b.src}"), FIXED)
        if op == DIV and lt == FIXED and rt == INT:
            return _Expr(fx.WRAP_SRC.format(f"_idiv_raw({a.src}, {b.src}, {loc!r})"), FIXED)
        t = FIXED if FIXED in (lt, rt) else INT
        a, b = self.convert(a, t, loc), self.convert(b, t, loc)
        if op in (ADD, SUB):
            return _Expr(fx.WRAP_SRC.format(f"{a.src} {'+' if op == ADD else '-'} {b.src}"), t)
        if op == MULT:
            if t == INT:
                return _Expr(fx.WRAP_SRC.format(f"{a.src} * {b.src}"), INT)
            return _Expr(fx.WRAP_SRC.format(f"({a.src} * {b.src}) >> 28"), FIXED)
        if t == INT:
            return _Expr(fx.WRAP_SRC.format(f"_idiv_raw({a.src}, {b.src}, {loc!r})"), INT)
        return _Expr(f"_fdiv({a.src}, {b.src}, {loc!r})", FIXED)

    def _fold(self, e: _Expr, loc: str) -> _Expr:
        """Evaluate an expression whose operands are all constants (its source then has no free locals)."""
        try:
            code = compile(e.src, "<fold>", "eval")
        except SyntaxError:
            return e
        if any(not n.startswith("_") for n in code.co_names):
            return e
        namespace = pure_helpers()
        if any(n not in namespace for n in code.co_names):
            return e
        try:
            value = eval(code, namespace)
        except Exception:  # e.g. a constant division by zero: left for run time, which reports it with its loc
            return e
        return _Expr(repr(value), e.type, value)

    def convert(self, e: _Expr, to: str, loc: str) -> _Expr:
        """Implicit cast of an expression to `to` (engine/fixed.py rules)."""
        if e.type == to:
            return e
        if to == BOOL:
            out = _Expr(f"({e.src} != 0)", BOOL)
        elif to == FIXED:
            if e.type == BOOL:
                out = _Expr(f"({fx.ONE} if {e.src} else 0)", FIXED)
            else:
                out = _Expr(fx.WRAP_SRC.format(f"({e.src}) << 28"), FIXED)
        elif e.float_literal is not None:
            # A Python float where QUA wants an int (update_frequency(el, 50e6), wait(1e3), duration=100.0):
            # the client sends it as a fixed literal, which cannot hold it; the platform casts the number itself
            # to int, truncating ("update_frequency('q1', 100.7) will set the frequency to 100 Hz").
            value = fx.wrap(math.trunc(e.float_literal))
            return _Expr(str(value), INT, value)
        else:  # INT
            out = _Expr(f"(1 if {e.src} else 0)", INT) if e.type == BOOL else _Expr(f"(({e.src}) >> 28)", INT)
        return self._fold(out, loc)

    def as_bool(self, e: _Expr, loc: str) -> _Expr:
        return self.convert(e, BOOL, loc)

    def to_python(self, e: _Expr) -> str:
        """Source for the Python value a host sees: int, float (fixed) or bool."""
        if e.type == FIXED:
            return f"{e.src} * {fx.SCALE!r}"
        return e.src

    def to_float(self, e: _Expr) -> str:
        if e.type == FIXED:
            return f"{e.src} * {fx.SCALE!r}"
        return f"float({e.src})"

    # ------------------------------------------------------------------------------------ library calls

    def _library(self, node, loc: str, want: str | None) -> _Expr:
        library, function = node.libraryName.lower(), node.functionName
        args = list(node.arguments)
        handler = _LIBRARY.get((library, function))
        if handler is None:
            self.problem(loc, f"{_NOT_YET}: library function {library}.{function}")
            return _Expr("0", INT, 0)
        return self._fold(handler(self, args, loc, want), loc)

    def scalar_arg(self, arg, loc: str, want: str | None = None) -> _Expr:
        if not arg.HasField("scalar"):
            self.problem(loc, "a scalar argument is needed here, not an array")
            return _Expr("0", INT, 0)
        return self.expr(arg.scalar, loc, want=want)

    def array_arg(self, arg, loc: str) -> _Var | None:
        if not arg.HasField("array"):
            self.problem(loc, "an array argument is needed here")
            return None
        return self._var(arg.array.name, loc, array=True)

    def float_of(self, e: _Expr) -> str:
        return f"({e.src}) * {fx.SCALE!r}" if e.type == FIXED else f"float({e.src})"


def _names_in(message) -> set[str]:
    """Every `name` a program message holds, nested messages included (variables, elements, operations...)."""
    names: set[str] = set()
    for field, value in message.ListFields():
        if field.type == field.TYPE_MESSAGE:
            for item in ((value,) if hasattr(value, "ListFields") else value):  # one message, or a repeated field
                names |= _names_in(item)
        elif field.name == "name" and isinstance(value, str):
            names.add(value)
    return names


def _process_names(node) -> str:
    kinds = []
    for process in node.measureProcesses:
        which = process.WhichOneof("process")
        kind = getattr(process, which).WhichOneof("process")
        kinds.append(("Digital" if which == "digital" else "") + kind[0].upper() + kind[1:])
    if node.streamAs:
        kinds.append("RawAdc")
    return ",".join(kinds)


# ---------------------------------------------------------------------------------------------- library table


def _math_float(fn_src: str, arity: int = 1):
    """A Math function evaluated on the real value of its fixed (or int) arguments, result fixed."""
    def handler(gen: _Generator, args, loc, want):
        if len(args) != arity:
            gen.problem(loc, f"expected {arity} argument(s)")
            return _Expr("0", FIXED, 0)
        values = [gen.float_of(gen.scalar_arg(a, loc, want=FIXED)) for a in args]
        return _Expr(f"_fmath({fn_src}, {', '.join(values)})", FIXED)
    return handler


def _math_abs(gen, args, loc, want):
    value = gen.scalar_arg(args[0], loc, want=want)
    t = INT if value.type == BOOL else value.type
    return _Expr(fx.WRAP_SRC.format(f"abs({gen.convert(value, t, loc).src})"), t)


def _math_div(gen, args, loc, want):
    x, y = gen.scalar_arg(args[0], loc), gen.scalar_arg(args[1], loc)
    if x.type == INT and y.type == INT:
        if want == FIXED:  # "the result type is determined by how the result is used" (Math.div docstring)
            return _Expr(fx.WRAP_SRC.format(f"_idiv_raw(({x.src}) << 28, {y.src}, {loc!r})"), FIXED)
        return _Expr(fx.WRAP_SRC.format(f"_idiv_raw({x.src}, {y.src}, {loc!r})"), INT)
    a, b = gen.convert(x, FIXED, loc), gen.convert(y, FIXED, loc)
    return _Expr(f"_fdiv({a.src}, {b.src}, {loc!r})", FIXED)


def _math_msb(gen, args, loc, want):
    x = gen.scalar_arg(args[0], loc)
    return _Expr(f"_msb({x.src}, {x.type == FIXED})", INT)


def _vector(reduce_src: str, result_type: str | None):
    def handler(gen, args, loc, want):
        array = gen.array_arg(args[0], loc)
        if array is None:
            return _Expr("0", INT, 0)
        t = result_type or array.type
        if reduce_src == "sum":
            return _Expr(fx.WRAP_SRC.format(f"sum({array.local})"), t)
        return _Expr(f"{reduce_src}({array.local})", t)
    return handler


def _math_dot(gen, args, loc, want):
    x, y = gen.array_arg(args[0], loc), gen.array_arg(args[1], loc)
    if x is None or y is None:
        return _Expr("0", INT, 0)
    if x.size != y.size:
        gen.problem(loc, f"Math.dot of arrays of different sizes ({x.size} and {y.size})")
    products = f"sum(_a * _b for _a, _b in zip({x.local}, {y.local}))"
    if x.type == FIXED and y.type == FIXED:
        return _Expr(fx.WRAP_SRC.format(f"{products} >> 28"), FIXED)
    return _Expr(fx.WRAP_SRC.format(products), FIXED if FIXED in (x.type, y.type) else INT)


def _cast(to: str, unsafe: bool = False):
    def handler(gen, args, loc, want):
        x = gen.scalar_arg(args[0], loc)
        if not unsafe:
            return gen.convert(x, to, loc)
        if to == BOOL:  # the lowest bit of the word (Cast.unsafe_cast_bool docstring)
            src = f"(({x.src}) & 1 == 1)" if x.type != BOOL else x.src
            return _Expr(src, BOOL)
        src = f"(1 if {x.src} else 0)" if x.type == BOOL else x.src  # same 32 bits, other type
        return _Expr(src, to)
    return handler


def _mul_int_by_fixed(gen, args, loc, want):
    i = gen.convert(gen.scalar_arg(args[0], loc), INT, loc)
    f = gen.convert(gen.scalar_arg(args[1], loc), FIXED, loc)
    return _Expr(fx.WRAP_SRC.format(f"({i.src} * {f.src}) >> 28"), INT)


def _mul_fixed_by_int(gen, args, loc, want):
    f = gen.convert(gen.scalar_arg(args[0], loc), FIXED, loc)
    i = gen.convert(gen.scalar_arg(args[1], loc), INT, loc)
    return _Expr(fx.WRAP_SRC.format(f"{f.src} * {i.src}"), FIXED)


def _util_cond(gen, args, loc, want):
    c = gen.as_bool(gen.scalar_arg(args[0], loc), loc)
    a = gen.scalar_arg(args[1], loc, want=want)
    b = gen.convert(gen.scalar_arg(args[2], loc, want=a.type), a.type, loc)
    return _Expr(f"({a.src} if {c.src} else {b.src})", a.type)


def _seed_key(gen, arg, loc) -> str:
    scalar = arg.scalar if arg.HasField("scalar") else None
    if scalar is not None and scalar.WhichOneof("expression_oneof") == "variable":
        return scalar.variable.name
    return loc


def _rand_int(gen, args, loc, want):
    seed = gen.convert(gen.scalar_arg(args[0], loc), INT, loc)
    limit = gen.convert(gen.scalar_arg(args[1], loc), INT, loc)
    return _Expr(f"_rand_int({_seed_key(gen, args[0], loc)!r}, {seed.src}, {limit.src})", INT)


def _rand_fixed(gen, args, loc, want):
    seed = gen.convert(gen.scalar_arg(args[0], loc), INT, loc)
    return _Expr(f"_rand_fixed({_seed_key(gen, args[0], loc)!r}, {seed.src})", FIXED)


_LIBRARY = {
    ("math", "pow"): _math_float("_pow", 2),
    ("math", "div"): _math_div,
    ("math", "exp"): _math_float("_exp"),
    ("math", "pow2"): _math_float("_pow2"),
    ("math", "ln"): _math_float("_log"),
    ("math", "log2"): _math_float("_log2"),
    ("math", "log10"): _math_float("_log10"),
    ("math", "sqrt"): _math_float("_sqrt"),
    ("math", "inv_sqrt"): _math_float("_inv_sqrt"),
    ("math", "inv"): _math_float("_inv"),
    ("math", "MSB"): _math_msb,
    ("math", "msb"): _math_msb,
    ("math", "elu"): _math_float("_elu"),
    ("math", "aelu"): _math_float("_elu"),
    ("math", "selu"): _math_float("_selu"),
    ("math", "relu"): _math_float("_relu"),
    ("math", "plrelu"): _math_float("_plrelu", 2),
    ("math", "lrelu"): _math_float("_lrelu"),
    ("math", "sin2pi"): _math_float("_sin2pi"),
    ("math", "cos2pi"): _math_float("_cos2pi"),
    ("math", "atan_2pi"): _math_float("_atan_2pi"),
    ("math", "atan2_2pi"): _math_float("_atan2_2pi", 2),
    ("math", "abs"): _math_abs,
    ("math", "sin"): _math_float("_sin"),
    ("math", "cos"): _math_float("_cos"),
    ("math", "atan"): _math_float("_atan"),
    ("math", "atan2"): _math_float("_atan2", 2),
    ("math", "sum"): _vector("sum", None),
    ("math", "max"): _vector("max", None),
    ("math", "min"): _vector("min", None),
    ("math", "argmax"): _vector("_argmax", INT),
    ("math", "argmin"): _vector("_argmin", INT),
    ("math", "dot"): _math_dot,
    ("cast", "mul_int_by_fixed"): _mul_int_by_fixed,
    ("cast", "mul_fixed_by_int"): _mul_fixed_by_int,
    ("cast", "to_int"): _cast(INT),
    ("cast", "to_fixed"): _cast(FIXED),
    ("cast", "to_bool"): _cast(BOOL),
    ("cast", "unsafe_cast_int"): _cast(INT, unsafe=True),
    ("cast", "unsafe_cast_fixed"): _cast(FIXED, unsafe=True),
    ("cast", "unsafe_cast_bool"): _cast(BOOL, unsafe=True),
    ("util", "cond"): _util_cond,
    ("random", "rand_int"): _rand_int,
    ("random", "rand_fixed"): _rand_fixed,
}


def _assigned_name(assign) -> str | None:
    """The scalar variable an assign statement writes, or None (an array cell, an IO register)."""
    target = assign.target if assign.HasField("target") else None
    if target is not None and target.HasField("arrayCell"):
        return None
    ref = target.variable if target is not None else assign.variable
    return None if ref.ioNumber else ref.name


def _variable_name(expression) -> str | None:
    return expression.variable.name if expression.WhichOneof("expression_oneof") == "variable" else None
