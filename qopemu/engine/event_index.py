"""The play and ramp events of a run, per element in start order, so that rendering a window of the outputs looks
up only the events that can reach it (loopback inputs, simulated samples rendered window after window)."""

from __future__ import annotations

import bisect

from qopemu.engine.events import PlayEvent, RampToZeroEvent


class EventIndex:
    """The recorded play and ramp events of some elements, per element in start order, so a window looks up only the
    events that can reach it. The runtime records events in program order, which is not time order across
    elements."""

    def __init__(self, elements: set[str], whole: set[str], reach: int):
        self.elements = elements
        self._whole = whole  # elements whose every earlier event matters (sticky levels, IIR filters)
        self._reach = reach  # how far before a window an event's effect can start (port delays, buffers)
        self._timelines: dict[str, list[PlayEvent | RampToZeroEvent]] = {}
        self._starts: dict[str, list[int]] = {}
        self._longest: dict[str, int] = {}

    def record(self, event: PlayEvent | RampToZeroEvent) -> None:
        timeline = self._timelines.setdefault(event.element, [])
        starts = self._starts.setdefault(event.element, [])
        at = bisect.bisect_right(starts, event.start)
        starts.insert(at, event.start)
        timeline.insert(at, event)
        span = event.length if isinstance(event, PlayEvent) else event.duration
        self._longest[event.element] = max(self._longest.get(event.element, 0), span)

    def extend(self, events: list[PlayEvent | RampToZeroEvent]) -> None:
        """Record many events at once: appended, then each element's timeline sorted once (a run's events come
        mostly in time order per element, which the sort takes in linear time)."""
        touched = set()
        for event in events:
            self._timelines.setdefault(event.element, []).append(event)
            touched.add(event.element)
            span = event.length if isinstance(event, PlayEvent) else event.duration
            if span > self._longest.get(event.element, 0):
                self._longest[event.element] = span
        for name in touched:
            self._timelines[name].sort(key=_start)
            self._starts[name] = [event.start for event in self._timelines[name]]

    def near(self, start: int, length: int) -> list[object]:
        """The recorded events that can reach the output window: those overlapping it (widened by the reach), and
        the whole history of the elements that need it."""
        events: list[object] = []
        for timeline in self.near_by_element(start, length).values():
            events.extend(timeline)
        return events

    def near_by_element(self, start: int, length: int) -> dict[str, list[PlayEvent | RampToZeroEvent]]:
        """`near`, per element, each in start order: slices of the timelines, with no work per event."""
        lo, hi = start - self._reach, start + length
        out = {}
        for name, timeline in self._timelines.items():
            starts = self._starts[name]
            last = bisect.bisect_left(starts, hi)
            first = 0 if name in self._whole else bisect.bisect_left(starts, lo - self._longest[name])
            if last > first:
                out[name] = timeline[first:last]
        return out


def _start(event: PlayEvent | RampToZeroEvent) -> int:
    return event.start
