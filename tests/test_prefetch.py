"""The boot planner: what a cold read through a path brings along, learned from sessions."""

from __future__ import annotations

from metadata.prefetch import BootPlanner
from metadata.records import Slice

OPENER = ("/openstack/{version}/meta_data.json", "2018-08-27")
LATER = ("/{version}/meta-data/public-keys/0/openssh-key", "latest")
UNRELATED = ("/{version}/user-data", "latest")


def learn(planner: BootPlanner, boots: int) -> None:
    """Boots of distinct instances, each opened cold by OPENER and then asking LATER."""
    for n in range(boots):
        uuid = f"instance-{n}"
        planner.observe(uuid, OPENER, {Slice.CORE, Slice.METADATA}, cold=True, now=100.0 + n)
        planner.observe(uuid, LATER, {Slice.KEYS}, cold=False, now=100.5 + n)


def test_nothing_is_planned_before_enough_sessions() -> None:
    planner = BootPlanner()
    learn(planner, 2)
    assert planner.plan(OPENER) == frozenset()
    assert planner.plan(LATER) == frozenset()


def test_the_opener_plans_what_its_sessions_went_on_to_need() -> None:
    planner = BootPlanner()
    learn(planner, 3)
    assert planner.plan(OPENER) == {Slice.CORE, Slice.METADATA, Slice.KEYS}


def test_a_later_path_read_first_plans_as_the_boot_it_belongs_to() -> None:
    # The boot's requests arrive all at once: the openssh-key read may reach us first.
    planner = BootPlanner()
    learn(planner, 3)
    assert planner.plan(LATER) == planner.plan(OPENER)


def test_a_path_never_seen_in_a_boot_plans_nothing() -> None:
    planner = BootPlanner()
    learn(planner, 5)
    assert planner.plan(UNRELATED) == frozenset()


def test_a_path_asked_twice_in_one_session_counts_once() -> None:
    planner = BootPlanner()
    planner.observe("a", OPENER, {Slice.CORE}, cold=True, now=1.0)
    for _ in range(5):
        planner.observe("a", LATER, {Slice.KEYS}, cold=False, now=1.1)
    for uuid in ("b", "c"):
        planner.observe(uuid, OPENER, {Slice.CORE}, cold=True, now=2.0)
    assert planner.plan(OPENER) == {Slice.CORE}
    assert planner.plan(LATER) == frozenset()  # asked in one session of three
    learn(planner, 2)
    assert planner.plan(LATER) == planner.plan(OPENER)


def test_a_new_opener_plans_after_its_third_session_whatever_came_before() -> None:
    """Plans are exact, however many sessions other paths opened first (a boot storm after
    a cold-leaf run must not pay a second statement while a plan catches up)."""
    planner = BootPlanner()
    for n in range(200):
        planner.observe(f"leaf-{n}", UNRELATED, {Slice.USER_DATA}, cold=True, now=1.0)
    assert planner.plan(OPENER) == frozenset()
    learn(planner, 3)
    assert planner.plan(OPENER) == {Slice.CORE, Slice.METADATA, Slice.KEYS}
    assert planner.plan(LATER) == planner.plan(OPENER)


def test_a_path_plans_as_the_opener_of_most_of_its_sessions() -> None:
    planner = BootPlanner()
    learn(planner, 3)  # LATER asked after OPENER three times
    for n in range(4):  # then after UNRELATED four times
        planner.observe(f"u-{n}", UNRELATED, {Slice.USER_DATA}, cold=True, now=10.0 + n)
        planner.observe(f"u-{n}", LATER, {Slice.KEYS}, cold=False, now=10.1 + n)
    assert planner.plan(LATER) == planner.plan(UNRELATED) == {Slice.USER_DATA, Slice.KEYS}
