"""The page of ``erlrestore-serve``: restore a photo in a browser, through the server's own REST API.

``GET /`` (also ``/ui`` and ``/ui/``) answers a small page: pick one of the
served models (and a version), drop or choose a photo of any size, watch the
tiles being restored, see input and result side by side and download the
result as a PNG. The page is three static files in ``static/``
(``index.html``, ``page.js``, ``page.css``, answered at ``/ui/page.js`` and
``/ui/page.css``) and one JSON listing, ``GET /ui/config.json``
(:func:`config`): the models with their versions and signatures, and the
server's limits, so that the page can tell a photo is too large before
sending it. Everything else goes through the API every client uses:

* ``POST /v1/models/<name>[/versions/<v>]:predict`` with
  ``{"signature_name": "restore_bytes", "instances": [{"b64": <the file>}]}``
  and an ``X-Request-Id`` header (the file's bytes as they are, so the
  server decodes it exactly as ``erlrestore-restore`` would and answers the
  same pixels), answered ``{"predictions": [{"b64": <8-bit PNG>}]}``;
* ``GET /v1/progress/<request id>`` (:mod:`~erlrestore.serving.tracker`),
  polled while the request runs, for the bar (tiles done of all, time left);
  while it answers nothing useful the bar is indeterminate;
* errors are the server's own ``{"error": ...}`` text, shown on the page
  under a headline for the kind of failure (not an image, too large, unknown
  model, server busy, server error).

Why a page of our own rather than Gradio (or Streamlit and the like): it adds
no dependency to erlrestore (Gradio pulls in a web framework and some
hundred megabytes, and starts a second server beside this one); it has no
build step and loads nothing from a CDN, so it works offline, on an
air-gapped machine, exactly as installed; and it is a client of the same
REST API as ``erlrestore-client`` and TF Serving clients, so what the page
shows is what the API answers (with TF Serving itself only the page is
missing). Plain HTML and some 500 lines of vanilla JavaScript and CSS are
easy to read and to change.

Safety: request paths are looked up in a fixed table (:data:`_ASSETS`),
never used as file names; the files are read from the installed package.
Every file is answered with a Content-Security-Policy that allows only this
server's own scripts, styles and requests (no inline script, nothing from
elsewhere), ``X-Content-Type-Options: nosniff`` and no framing. The server
binds 127.0.0.1 by default and has no authentication (see
:mod:`erlrestore.cli.serve`).
"""

import functools
import importlib.resources

from erlrestore import savedmodel_contract as contract

CONFIG_PATH = "/ui/config.json"
PROGRESS_PATH = "/v1/progress/"
_STATIC_FOLDER = "static"
_HTML = "text/html; charset=utf-8"
_ASSETS = {  # request path -> (file in static/, content type)
    "/": ("index.html", _HTML),
    "/ui": ("index.html", _HTML),
    "/ui/": ("index.html", _HTML),
    "/ui/index.html": ("index.html", _HTML),
    "/ui/page.js": ("page.js", "text/javascript; charset=utf-8"),
    "/ui/page.css": ("page.css", "text/css; charset=utf-8"),
}
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-cache"),
)
_METHODS = ("GET", "HEAD")


class Asset:
    """One file of the page: ``body`` (bytes), ``content_type`` and the ``headers`` to answer it with."""

    def __init__(self, body, content_type, headers=HEADERS):
        self.body = body
        self.content_type = content_type
        self.headers = tuple(headers)


@functools.lru_cache(maxsize=None)
def asset(name, content_type):
    """The :class:`Asset` of ``static/<name>`` (read once from the installed package, then kept)."""
    body = importlib.resources.files(__package__).joinpath(_STATIC_FOLDER, name).read_bytes()
    return Asset(body, content_type)


def route(path, server):
    """``(allowed methods, action)`` for a path of the page, or None for any other path.

    ``action()`` returns ``(status, payload, compact)`` as the REST routes'
    actions do; the payload is an :class:`Asset` for the page's files and a
    dict (JSON) for :data:`CONFIG_PATH`.
    """
    if path == CONFIG_PATH:
        return _METHODS, lambda: (200, config(server), False)
    entry = _ASSETS.get(path)
    if entry is None:
        return None
    return _METHODS, lambda: (200, asset(*entry), False)


def config(server):
    """What the page needs to know of ``server`` (a RestServer), as JSON.

    ``{"models": [{"name", "default_version", "versions": [{"version",
    "signatures": [...], "restores_files": bool}], "restores_files"}], ...}``
    (models by name, versions newest first; ``restores_files``: the
    ``restore_bytes`` signature the page sends files to is there), the
    signature and tensor names the page uses, the progress endpoint and the
    limits a request must keep (``max_request_bytes`` for the whole JSON
    body, ``max_image_pixels`` per image or None, ``tile`` or None).
    """
    from erlrestore.serving.rest import REQUEST_ID_HEADER  # pylint: disable=import-outside-toplevel

    repository = server.repository
    models = []
    for name, versions in sorted(repository.models.items()):
        listed = []
        for version in sorted(versions, reverse=True):
            signatures = sorted(key for key in versions[version].signatures if not key.startswith("__"))
            listed.append({"version": str(version), "signatures": signatures,
                           "restores_files": contract.BYTES_SIGNATURE in signatures})
        models.append({"name": name, "default_version": str(max(versions)), "versions": listed,
                       "restores_files": listed[0]["restores_files"]})
    tiling = getattr(repository, "tiling", None)
    return {
        "models": models,
        "signature_name": contract.BYTES_SIGNATURE,
        "output_key": contract.BYTES_OUTPUT_KEY,
        "progress_path": PROGRESS_PATH if hasattr(server, "tracker") else None,
        "request_id_header": REQUEST_ID_HEADER,
        "max_request_bytes": server.max_request_bytes,
        "max_image_pixels": repository.max_image_pixels or None,
        "tile": getattr(tiling, "tile", None),
    }
