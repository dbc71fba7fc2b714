"""Who the stream's driver is, and whether it still runs: what lets `fruits status` say DEAD at once.

The driver records its identity in `status/latest.json` when the query starts:
host name, process id and, on Linux, the process's start time in clock ticks
since boot (so a recycled process id is not mistaken for the driver). On the
same host, `fruits status` checks it; elsewhere (an EMR driver seen from a
laptop) only the heartbeat's age can tell.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

ALIVE = "alive"
GONE = "gone"
UNKNOWN = "unknown"


def start_ticks(pid: int) -> int | None:
    """The process's start time (field 22 of /proc/<pid>/stat); None when it does not exist or no /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: the fields after it follow the last ")".
    return int(stat.rsplit(")", 1)[1].split()[19])


def identity() -> dict:
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "start_ticks": start_ticks(pid)}


def process_state(recorded: dict | None) -> str:
    """ALIVE or GONE for a driver of this host; UNKNOWN for another host or an identity not recorded."""
    if not recorded or recorded.get("host") != socket.gethostname() or not recorded.get("pid"):
        return UNKNOWN
    if recorded.get("start_ticks") is None:
        return UNKNOWN
    return ALIVE if start_ticks(int(recorded["pid"])) == recorded["start_ticks"] else GONE
