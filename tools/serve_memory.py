"""Peak memory of ``erlrestore-serve`` restoring one large photo, and its pixels against ``erlrestore-restore``.

    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python -m tools.serve_memory                  # tiny MEMD, 4000x3000
    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python -m tools.serve_memory --model=savedmodels/erlnet --size=2000x1500
    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python -m tools.serve_memory --server_flags=--tile=0   # the old whole-image way

What it does, each step a separate process so that every figure is one
program's own:

1. Without ``--model``: builds a tiny MEMD (:data:`erlrestore.models.presets.TINY_MEMD`;
   ``--preset=full``: the default-size MEMD), with random weights from
   ``--seed`` (so that it changes the image visibly),
   saves it as ``.keras`` and exports it with ``erlrestore-export`` into a
   temporary folder. ``--model`` takes a SavedModel model folder (version
   folders inside) instead.
2. Writes a ``--size`` synthetic photo (:func:`tools.common.synthetic_image`:
   colour ramps, stripes, mild noise) as an 8-bit PNG.
3. Starts ``erlrestore-serve`` on 127.0.0.1 (a free port) with ``--tile``,
   ``--overlap`` and any ``--server_flags``, and waits until it answers.
4. Sends the photo ``--requests`` times, one after the other, with
   :func:`erlrestore.client.restore_file_rest` (the REST ``restore_bytes``
   path of ``erlrestore-client``), printing the tiles the server reports.
   Before each request the server's peak resident set is reset (``5`` into
   ``/proc/<pid>/clear_refs``, where the kernel allows it) and after it
   ``VmHWM`` and ``VmRSS`` are read from ``/proc/<pid>/status``: the peak
   during that request, and what the server keeps once it answered (read
   after ``--settle`` seconds).
5. Restores the same photo with ``erlrestore-restore`` (same model, tile and
   overlap) and reports its peak resident set (``ru_maxrss`` of that child,
   from ``os.wait4``), then the largest difference between the two restored
   images, in 8-bit levels (0 means the same pixels).

The last stdout line is one JSON object with every figure (sizes in MB of
10^6 bytes): ``server_rss_start_mb`` (after loading the model),
``server_peak_since_start_mb`` (``VmHWM`` before the first reset: start-up
and loading), per request ``peak_mb``, ``after_mb`` and ``seconds``,
``server_peak_mb`` (the largest of all), ``restore_peak_mb``,
``max_difference_levels`` and ``ok`` (``server_peak_mb`` below
``--limit_mb`` and the difference at most 1 level). It exits 1 when not
``ok``. Linux only (``/proc``).
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
from absl import app, flags

from erlrestore import client
from erlrestore.data import image_files
from tools import common

FLAGS = flags.FLAGS
MB = 1e6
MODEL_NAME = "memd"

flags.DEFINE_string("model", None, "A SavedModel model folder (version folders inside); default: a MEMD of "
                    "--preset exported with erlrestore-export.")
flags.DEFINE_enum("preset", "tiny", ["tiny", "full"], "Without --model: the MEMD to export, tiny (TINY_MEMD) or full "
                  "(MEMDConfig's defaults: depth 4, 32 base filters; random weights, so only memory and time mean "
                  "anything).")
flags.DEFINE_string("size", "4000x3000", "WIDTHxHEIGHT of the synthetic photo.")
flags.DEFINE_integer("tile", 512, "--tile of both erlrestore-serve and erlrestore-restore.")
flags.DEFINE_integer("overlap", 32, "--overlap of both.")
flags.DEFINE_integer("requests", 2, "Requests sent one after the other (the first one also traces the model).")
flags.DEFINE_list("server_flags", [], "More erlrestore-serve flags, e.g. --max_inflight_pixels=0,--tile=0.")
flags.DEFINE_float("settle", 2.0, "Seconds to wait after an answer before reading the server's resident set.")
flags.DEFINE_float("limit_mb", 3000.0, "The server's peak must stay below this.")
flags.DEFINE_float("timeout", 1800.0, "Seconds to wait for each answer.")
flags.DEFINE_integer("seed", 0, "Seed of the tiny model's weights and of the photo's noise.")
flags.DEFINE_string("workdir", None, "Where to write the model and images (default: a temporary folder, removed).")


def _env():
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def _status_mb(pid, field):
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024 / MB
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def _reset_peak(pid):
    try:
        with open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def export_model(folder, seed, preset):
    """Builds a MEMD with random weights, saves it and exports it with erlrestore-export; returns the model folder."""
    keras_path = os.path.join(folder, f"{MODEL_NAME}.keras")
    fields = "**presets.TINY_MEMD" if preset == "tiny" else ""
    script = (
        "import numpy as np\n"
        "from erlrestore.models import memd, presets\n"
        f"model = memd.build_memd(memd.memd_config('MEMD', {fields}))\n"
        f"rng = np.random.default_rng({seed})\n"
        "model.set_weights([rng.normal(0.0, 0.1, w.shape).astype(w.dtype) for w in model.get_weights()])\n"
        f"model.save({keras_path!r})\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, env=_env())
    base = os.path.join(folder, "savedmodels")
    subprocess.run([sys.executable, "-m", "erlrestore.cli.export", f"--model={keras_path}", f"--base_dir={base}",
                    f"--name={MODEL_NAME}"], check=True, env=_env(), stdout=subprocess.DEVNULL)
    return os.path.join(base, MODEL_NAME)


class Server:
    """``erlrestore-serve`` for one model folder, in a child process; ``port`` once it answers."""

    def __init__(self, model_folder, extra_flags):
        self.name = os.path.basename(os.path.normpath(model_folder))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "erlrestore.cli.serve", f"--model_base_path={os.path.dirname(model_folder)}",
             f"--model_name={self.name}", "--port=0", *extra_flags],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env(),
        )
        self.lines = []
        threading.Thread(target=lambda: self.lines.extend(self.process.stderr), daemon=True).start()
        self.port = None
        deadline = time.monotonic() + 600
        while self.port is None:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("erlrestore-serve did not start:\n" + "".join(self.lines)[-3000:])
            match = re.search(r"REST API on http://127\.0\.0\.1:(\d+)/", "".join(self.lines))
            if match:
                self.port = int(match.group(1))
            time.sleep(0.1)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def restore_with_cli(model_folder, photo, output_dir):
    """Runs erlrestore-restore on ``photo``; returns ``(output path, its peak RSS in MB, seconds)``."""
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "erlrestore.cli.restore", f"--model={model_folder}", f"--input={photo}",
         f"--output_dir={output_dir}", f"--tile={FLAGS.tile}", f"--overlap={FLAGS.overlap}"],
        env=_env(), stdout=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"erlrestore-restore exited with status {process.returncode}")
    return os.path.join(output_dir, os.path.basename(photo)), usage.ru_maxrss * 1024 / MB, time.monotonic() - started


def measure(workdir):
    width, height = (int(v) for v in FLAGS.size.lower().split("x"))
    model_folder = FLAGS.model or export_model(workdir, FLAGS.seed, FLAGS.preset)
    photo = os.path.join(workdir, "photo.png")
    image_files.write_image(photo, common.synthetic_image(height, width, seed=FLAGS.seed))
    print(f"photo {width}x{height} ({width * height / 1e6:.1f} MP), PNG of {os.path.getsize(photo) / MB:.1f} MB; "
          f"model {model_folder}", flush=True)
    server = Server(model_folder, [f"--tile={FLAGS.tile}", f"--overlap={FLAGS.overlap}", *FLAGS.server_flags])
    result = {"width": width, "height": height, "tile": FLAGS.tile, "overlap": FLAGS.overlap,
              "server_flags": FLAGS.server_flags, "model": FLAGS.model or f"{FLAGS.preset} MEMD (erlrestore-export)"}
    try:
        pid = server.process.pid
        result["server_rss_start_mb"] = round(_status_mb(pid, "VmRSS"), 1)
        result["server_peak_since_start_mb"] = round(_status_mb(pid, "VmHWM"), 1)
        result["peak_reset"] = True
        requests = []
        served = os.path.join(workdir, "served.png")
        for index in range(FLAGS.requests):
            result["peak_reset"] &= _reset_peak(pid)
            started = time.monotonic()
            last = [0.0]

            def on_progress(snapshot, started=started, last=last):
                now = time.monotonic()
                if now - last[0] >= 5.0 or snapshot.get("state") == "done":
                    last[0] = now
                    eta = snapshot.get("eta_seconds")
                    print(f"  request {index + 1}: {snapshot['state']} {snapshot['tiles_done']}/"
                          f"{snapshot['tiles_total']} tiles, {now - started:.0f} s"
                          + ("" if eta is None else f", ETA {eta:.0f} s"), flush=True)

            client.restore_file_rest(server.url, server.name, photo, served, timeout=FLAGS.timeout,
                                     on_progress=on_progress)
            seconds = time.monotonic() - started
            peak = _status_mb(pid, "VmHWM")
            time.sleep(FLAGS.settle)
            after = _status_mb(pid, "VmRSS")
            requests.append({"seconds": round(seconds, 1), "peak_mb": round(peak, 1), "after_mb": round(after, 1)})
            print(f"request {index + 1}: {seconds:.1f} s, server peak {peak:.0f} MB, {after:.0f} MB "
                  f"{FLAGS.settle:g} s after the answer", flush=True)
        result["requests"] = requests
    finally:
        server.stop()
    result["server_peak_mb"] = max(result["server_peak_since_start_mb"], *(r["peak_mb"] for r in requests))
    reference, restore_peak, restore_seconds = restore_with_cli(model_folder, photo, os.path.join(workdir, "restored"))
    result["restore_peak_mb"] = round(restore_peak, 1)
    result["restore_seconds"] = round(restore_seconds, 1)
    difference = np.abs(image_files.read_image(served) - image_files.read_image(reference)).max()
    result["max_difference_levels"] = round(float(difference) * 255, 3)
    result["ok"] = bool(result["server_peak_mb"] < FLAGS.limit_mb and result["max_difference_levels"] <= 1.0)
    print(f"erlrestore-restore: peak {restore_peak:.0f} MB, {restore_seconds:.1f} s; largest difference from the "
          f"served image: {result['max_difference_levels']:g} of 255")
    return result


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if FLAGS.workdir:
        os.makedirs(FLAGS.workdir, exist_ok=True)
        result = measure(FLAGS.workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="serve_memory_") as workdir:
            result = measure(workdir)
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    app.run(main)
