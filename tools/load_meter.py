"""The load on the machine during ``tools.bench_peer``'s measurements, and the part of it that is not theirs.

:class:`ProcMeter` reads the 1-minute load average and, around each
measured child process, the CPU time the whole machine spent busy
(``/proc/stat``) less what this process and its children used
(``getrusage``): the CPUs other processes kept busy meanwhile
(:func:`others_cpus`). :func:`default_max_load` is the limit the harness
judges them against by default.
"""

import os
import resource
import time

# /proc/stat's "cpu" fields counted as busy: user nice system idle iowait irq softirq steal (guest is in user).
_BUSY_FIELDS = (0, 1, 2, 5, 6, 7)


def default_max_load(threads):
    """``--max_load``'s default: other work worth a quarter of the threads used, at least half a CPU."""
    return max(0.5, threads / 4)


def parse_proc_stat(text):
    """Busy ticks of all CPUs from ``/proc/stat``'s text (its ``cpu`` line; see :data:`_BUSY_FIELDS`)."""
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            values = [int(v) for v in fields[1:]]
            return sum(values[i] for i in _BUSY_FIELDS if i < len(values))
    raise ValueError("no 'cpu' line in /proc/stat")


def others_cpus(busy_s, own_s, wall_s):
    """CPUs other processes kept busy on average: the machine's busy seconds less ours, over the wall time."""
    if busy_s is None or wall_s <= 0:
        return None
    return max(0.0, busy_s - own_s) / wall_s


def _rusage_seconds(who):
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


class ProcMeter:
    """The load around each child (:mod:`tools.bench_peer`): ``/proc/stat`` less ``getrusage`` of this process
    and its children.

    :meth:`start` before a child, :meth:`stop` once it has been waited for
    (so that its CPU time is in ``RUSAGE_CHILDREN``).
    """

    def __init__(self, proc_stat="/proc/stat"):
        self.proc_stat = proc_stat
        self.ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def loadavg(self):
        """``os.getloadavg()`` as a list, or None where the system has none."""
        try:
            return list(os.getloadavg())
        except (OSError, AttributeError):
            return None

    def busy_seconds(self):
        try:
            with open(self.proc_stat, encoding="ascii") as handle:
                return parse_proc_stat(handle.read()) / self.ticks
        except (OSError, ValueError):
            return None

    def start(self):
        return (time.monotonic(), self.busy_seconds(), _rusage_seconds(resource.RUSAGE_SELF),
                _rusage_seconds(resource.RUSAGE_CHILDREN))

    def stop(self, started):
        wall_0, busy_0, self_0, children_0 = started
        wall_1, busy_1, self_1, children_1 = self.start()
        children_s = children_1 - children_0
        own_s = children_s + self_1 - self_0
        busy_s = None if busy_0 is None or busy_1 is None else busy_1 - busy_0
        return {"wall_s": wall_1 - wall_0, "children_cpu_s": children_s,
                "others_cpus": others_cpus(busy_s, own_s, wall_1 - wall_0)}
