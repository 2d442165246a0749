"""The process tree under one process, read from Linux ``/proc`` (stdlib only).

Used by the server supervisor (:mod:`justitia.vllm.supervise`) to find every process a vLLM server
started, wherever they went (vLLM's EngineCore and Worker are grandchildren of the API server), and
by the tests that check nothing of a stopped server is left.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Proc:
    """One process as ``/proc/<pid>/stat`` shows it."""

    pid: int
    ppid: int
    pgid: int
    state: str  # R, S, D, Z (zombie: exited, not yet reaped) ...


def read_proc(pid: int) -> Proc | None:
    """The process ``pid``, or ``None`` if it does not exist (any more)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    # the command name (2nd field) is in parentheses and may hold spaces or ')': split after the last ')'
    fields = stat[stat.rindex(")") + 2:].split()
    return Proc(pid, int(fields[1]), int(fields[2]), fields[0])


def process_table() -> dict[int, Proc]:
    """Every process visible in ``/proc``, by pid."""
    table: dict[int, Proc] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            proc = read_proc(int(entry))
            if proc is not None:
                table[proc.pid] = proc
    return table


def descendants(pid: int, table: dict[int, Proc] | None = None) -> list[int]:
    """Every live process below ``pid`` (children, grandchildren ...), parents before children;
    zombies are left out (they hold nothing but a table slot)."""
    table = process_table() if table is None else table
    children: dict[int, list[int]] = {}
    for p in table.values():
        children.setdefault(p.ppid, []).append(p.pid)
    out: list[int] = []
    todo = list(children.get(pid, ()))
    while todo:
        p = todo.pop(0)
        if table[p].state != "Z":
            out.append(p)
        todo.extend(children.get(p, ()))
    return out


def group_members(pgid: int, table: dict[int, Proc] | None = None) -> list[int]:
    """Every live process of process group ``pgid``."""
    table = process_table() if table is None else table
    return [p.pid for p in table.values() if p.pgid == pgid and p.state != "Z"]


def is_alive(pid: int) -> bool:
    """Whether ``pid`` exists and has not exited (a zombie counts as gone)."""
    proc = read_proc(pid)
    return proc is not None and proc.state != "Z"
