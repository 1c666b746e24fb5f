"""Pieces the results page and the reports of :mod:`erlrestore.reproduce` share.

:func:`cell` (text safe inside a Markdown table), :func:`mean_std` (a list
of numbers as "mean ± standard deviation"), and :func:`pyplot` (matplotlib
for writing image files, or None when it is not installed: every plot is
optional). :mod:`erlrestore.results_page`, :mod:`erlrestore.paper_figures`
and :mod:`erlrestore.table_reports` use them, so a page's cells read the
same whichever section wrote them.
"""

import math

import numpy as np


def cell(text):
    """``text`` for one Markdown table cell: pipes escaped, line breaks made spaces."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def mean_std(values, digits):
    """"m ± s" (sample standard deviation) of the numbers in ``values``, None and NaN left out; the number
    alone for one value, "—" for none."""
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"


def pyplot():
    """``matplotlib.pyplot`` on the file-only Agg backend, or None without matplotlib."""
    try:
        import matplotlib  # pylint: disable=import-outside-toplevel

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt  # pylint: disable=import-outside-toplevel
    except ImportError:
        return None
    return plt
