"""The planner's pacer keeps a region's plans to their share of a core."""

from __future__ import annotations

import pytest

from services.matching import planning


def test_a_plan_waits_its_duty_share_after_the_last(monkeypatch: pytest.MonkeyPatch) -> None:
    """At a third of the time, a 2-second plan is followed by 4 seconds' rest; other
    regions are not held; a full duty never waits."""
    now = [100.0]
    monkeypatch.setattr("services.matching.planning.time.monotonic", lambda: now[0])
    pacer = planning.Pacer(duty=1 / 3)
    assert pacer.ready("A")
    pacer.record("A", 2.0)
    now[0] = 103.9
    assert not pacer.ready("A")
    assert pacer.ready("B")
    now[0] = 104.01
    assert pacer.ready("A")
    always = planning.Pacer(duty=1.0)
    always.record("A", 5.0)
    assert always.ready("A")
