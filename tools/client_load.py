"""Concurrent clients and latency statistics: the load side of a serving benchmark.

:func:`run_clients` calls one request function from several threads at
once, each taking the next request when its previous one is answered, up to
a number of requests and a time limit; :func:`latency_summary` turns the
latencies into p50 / p95 / max / mean milliseconds and requests per second,
the percentiles interpolating linearly between order statistics
(:func:`percentile`, NumPy's default ``linear`` method).
``python -m tools.bench_deploy --part=serving`` uses them.
"""

import statistics
import threading
import time


def percentile(values, q):
    """The ``q``-th percentile (0..100) of ``values``, linear between order statistics (NumPy's default).

    Raises ValueError for no values or ``q`` outside [0, 100].
    """
    values = sorted(float(v) for v in values)
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be in [0, 100], got {q!r}")
    position = (len(values) - 1) * q / 100.0
    low = int(position)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (position - low)


def latency_summary(latencies, wall_seconds):
    """Latencies (seconds) and the wall time -> p50/p95/max/mean in ms and requests per second."""
    if not latencies:
        return {"latency_ms_p50": None, "latency_ms_p95": None, "latency_ms_max": None, "latency_ms_mean": None,
                "requests_per_second": None}
    return {
        "latency_ms_p50": 1000.0 * percentile(latencies, 50),
        "latency_ms_p95": 1000.0 * percentile(latencies, 95),
        "latency_ms_max": 1000.0 * max(latencies),
        "latency_ms_mean": 1000.0 * statistics.fmean(latencies),
        "requests_per_second": len(latencies) / wall_seconds if wall_seconds > 0 else None,
    }


def run_clients(send, clients, requests, time_limit=None):
    """Calls ``send()`` ``requests`` times from ``clients`` threads at once; returns a result dict.

    Each thread takes the next request number when its previous call has
    returned, so at most ``clients`` calls are in flight. No call is started
    after ``time_limit`` seconds (None: no limit). A call that raises counts
    as an error (its latency is not recorded) and the thread goes on.

    Returns:
      ``{"latencies": [seconds of each successful call], "errors": count,
      "first_error": text or None, "started": calls started, "wall_seconds":
      first start to last return, "stopped_early": bool}``.
    """
    if clients < 1 or requests < 0:
        raise ValueError(f"need clients >= 1 and requests >= 0, got clients={clients}, requests={requests}")
    lock = threading.Lock()
    state = {"next": 0, "errors": 0, "first_error": None, "stopped_early": False}
    latencies = []
    start = time.perf_counter()
    deadline = None if time_limit is None else start + time_limit

    def client():
        while True:
            with lock:
                if state["next"] >= requests:
                    return
                if deadline is not None and time.perf_counter() >= deadline:
                    state["stopped_early"] = True
                    return
                state["next"] += 1
            began = time.perf_counter()
            try:
                send()
            except Exception as error:  # pylint: disable=broad-except
                with lock:
                    state["errors"] += 1
                    if state["first_error"] is None:
                        state["first_error"] = f"{type(error).__name__}: {error}"
                continue
            elapsed = time.perf_counter() - began
            with lock:
                latencies.append(elapsed)

    threads = [threading.Thread(target=client, name=f"bench-client-{i}", daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {
        "latencies": latencies,
        "errors": state["errors"],
        "first_error": state["first_error"],
        "started": state["next"],
        "wall_seconds": time.perf_counter() - start,
        "stopped_early": state["stopped_early"],
    }
