"""Count the statements one MariaDB user sent, from the server's own counters.

MariaDB's `information_schema.USER_STATISTICS` (kept while `userstat` is ON) counts, per
user, SELECTs, writes (INSERT/UPDATE/DELETE, even those the grants refuse) and the rest
(BEGIN, COMMIT, ROLLBACK, SET, SHOW). Protocol pings are not counted. Each cloud's clients
connect as users of their own, so a delta of these counters is exactly what that client
sent, whatever else the shared server is doing. Counters update as each statement ends.
"""

from __future__ import annotations

from dataclasses import dataclass

from loadtests.nova_peer.databases import mysql_admin


@dataclass(frozen=True, slots=True)
class StatementCounts:
    selects: int = 0
    writes: int = 0
    # transaction control and session set-up: the contract does not count them
    other: int = 0

    @property
    def statements(self) -> int:
        """What the contract counts: reads and writes, not transaction control."""
        return self.selects + self.writes

    def __sub__(self, earlier: StatementCounts) -> StatementCounts:
        return StatementCounts(
            self.selects - earlier.selects, self.writes - earlier.writes, self.other - earlier.other
        )


def enable_user_statistics() -> None:
    """Turn the server's per-user counters on (a global, dynamic switch; needs root)."""
    conn = mysql_admin()
    try:
        with conn.cursor() as cursor:
            cursor.execute("SET GLOBAL userstat = ON")
    finally:
        conn.close()


def read_counts(user: str) -> StatementCounts:
    conn = mysql_admin()
    try:
        with conn.cursor() as cursor:
            cursor.execute(
                "SELECT SELECT_COMMANDS, UPDATE_COMMANDS, OTHER_COMMANDS "
                "FROM information_schema.USER_STATISTICS WHERE USER = %s",
                (user,),
            )
            row = cursor.fetchone()
    finally:
        conn.close()
    return StatementCounts(*row) if row else StatementCounts()


class StatementCounter:
    """Statements `user` sent since the last `reset()` (or since this counter was made).

    >>> counter = StatementCounter(cloud.nova_user)
    >>> ...  # requests
    >>> counter.delta().statements
    """

    def __init__(self, user: str) -> None:
        enable_user_statistics()
        self.user = user
        self._start = read_counts(user)

    def reset(self) -> None:
        self._start = read_counts(self.user)

    def delta(self) -> StatementCounts:
        return read_counts(self.user) - self._start
