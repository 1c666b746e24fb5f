"""Where a user's data sets live: ``$ERLRESTORE_DATA_ROOT``, and nothing by default.

The tools that default to a data set (the demo's real rainy photo, the
reproduction tables' training photos and test sets, the data benchmark) look
for it under this root, so they work the same from a checkout, a wheel or
another machine: set ``ERLRESTORE_DATA_ROOT=/path/to/data`` (the folder
holding ``rain12/``, ``derain-train/`` ...) or pass the tool's own flag.
Without either, a tool that needs data says so instead of guessing a path.
"""

import os

VARIABLE = "ERLRESTORE_DATA_ROOT"


def data_root():
    """``$ERLRESTORE_DATA_ROOT``, or '' when unset."""
    return os.environ.get(VARIABLE, "")


def under_root(*parts):
    """``<data root>/<parts...>``, or '' when no data root is set."""
    root = data_root()
    return os.path.join(root, *parts) if root else ""
