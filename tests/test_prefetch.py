"""The boot planner: what a cold read through a path brings along, learned from sessions."""

from __future__ import annotations

from metadata.prefetch import EXACT_SESSIONS, BootPlanner
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


def test_a_plan_is_kept_until_enough_new_sessions_change_it() -> None:
    """Past EXACT_SESSIONS a plan is not worked out again for every request of a storm:
    it follows the counts once the sessions have grown by REFRESH_SHARE."""
    planner = BootPlanner()
    learn(planner, EXACT_SESSIONS)
    assert planner.plan(OPENER) == {Slice.CORE, Slice.METADATA, Slice.KEYS}
    # Boots that no longer ask LATER: KEYS falls below SHARE only after as many again.
    sessions = EXACT_SESSIONS
    for n in range(sessions, 3 * sessions):
        planner.observe(f"instance-{n}", OPENER, {Slice.CORE}, cold=True, now=100.0 + n)
        if n == sessions:
            assert Slice.KEYS in planner.plan(OPENER)  # kept: one new session
    assert planner.plan(OPENER) == {Slice.CORE}  # worked out again: 2x the sessions
