"""Pairing degraded (input) and clean (target) images of the public benchmarks.

:func:`find_pairs` turns one or two folders (or a CSV list,
:func:`pairs_from_csv`) into a sorted list of :class:`Pair` records, and
:func:`load_pair` decodes one record into two aligned float32 arrays.
Layouts (``layout=``):

``folders``
    Two folders. Files pair by identical stem (the extension may differ);
    else by the clean stem plus setting tags, several degraded images per
    clean one: Outdoor-Rain's ``in/im_0001_s80_a04.png`` <->
    ``gt/im_0001.png`` (tags ``_<letters><number>``: ``_s80_a04``, ``_3``,
    ``_sigma25``); otherwise by name with the tokens that mark a folder's
    role removed, e.g. ``rain/rain-001.png`` <-> ``norain/norain-001.png``.
    Given ONE folder, it looks inside it for (any case;
    ``INPUT_FOLDER_NAMES`` and ``TARGET_FOLDER_NAMES``):

    * a known pair of sub-folders: ``rain``/``norain``, ``rainy``/``norain``,
      ``input``/``target``, ``in``/``gt`` (Outdoor-Rain), ``hazy``/``gt``,
      ``lq``/``gt``, ``data``/``gt``, ``low``/``high`` (LOL),
      ``blur``/``sharp`` (GoPro), ``lr``/``hr``,
      ``rainy_image``/``ground_truth`` (Rain1400), ...;
    * failing that, a degraded sub-folder named with a level or other
      suffix beside a known clean one: ``rain100mm/``, ``rain50mm/``,
      ``rain_heavy/``, ``rain-light/`` or ``hazy_0.8/`` beside ``norain/``
      (a known input name, then a digit or a separator; not when the suffix
      holds a clean-role word or ``mask``/``streak``/``region``/``layer``/
      ``map``). Two such folders beside one clean folder are ambiguous;
    * PReNet's test layout: ONE such sub-folder beside images in the folder
      itself, the sub-folder's name giving its role and the folder's own
      images the other role: ``Rain100L/rainy/rain-001.png`` <->
      ``Rain100L/norain-001.png``, or the mirror case
      ``X/rain-001.png`` <-> ``X/norain/norain-001.png``;
    * JORDER's Rain100H/L release: an input sub-folder holding no images but
      exactly one scale folder ``X<k>`` (``rain/X2/norain-1x2.png`` <->
      ``norain/norain-1.png``) is read through that folder. (An input
      folder given explicitly is descended the same way.)
``one_folder``
    Degraded and clean images in one folder, told apart by a role word in
    the name: ``rain-001`` / ``norain-001``, PolyU ``X_real`` / ``X_mean``,
    SIDD ``0001_NOISY_SRGB_010`` / ``0001_GT_SRGB_010``, ``*_input`` /
    ``*_target``, ``*_lq`` / ``*_gt`` ... (``INPUT_WORDS`` / ``TARGET_WORDS``).
``reside``
    RESIDE hazy ``1400_3.png`` (ITS/SOTS: id_index) or ``0001_0.8_0.2.jpg``
    (OTS: id_A_beta) <-> clean ``1400.png`` / ``0001.png``; several hazy
    images may share one clean image. ``target_border=10`` records the
    SOTS-indoor convention (clean 640x480 cropped to the hazy 620x460).
``side_by_side``
    One folder of images that each hold input and target as left/right
    halves (Rain800, DID-MDN). Never auto-detected: pass ``pair_order``.

Name matching splits a file stem into letter runs and digit runs (``rain-001``
-> ``rain``, ``1``); letters compare case-insensitively and numbers by value,
so ``rain-1`` pairs with ``norain-001``. When the stems differ, a token
present in every file of one side and in no file of the other side is taken
to mark the side's role and is ignored. A scale tag ``x<k>`` ending every
degraded stem (the same ``k``, ``x`` standing alone between digits or
separators: ``norain-1x2``, ``0001x2``) and no clean stem is ignored too
(JORDER's Rain100H/L ``rain/X2`` names, DIV2K's ``LR/X2`` names).

``layout="auto"`` resolves as follows. Two different folders: ``reside`` when
every input stem looks like ``\\d+(_[\\d.]+)+`` or a bare number (at least one the
former: RESIDE's outdoor sets carry a few hazy files under the plain id) and every target stem is a
bare number, else ``folders``. One folder: a recognised sub-folder pair if
there is exactly one (more than one is an error listing them); else a
level-named degraded sub-folder beside a recognised clean one if there is
exactly one such pair (more than one is an error listing them; beside a
recognised pair, level-named folders are left out, as GoPro's
``blur_gamma/`` beside ``blur/`` + ``sharp/``); else one recognised
sub-folder beside images of the other role (PReNet); else ``reside`` if its
images split into RESIDE hazy names and bare ids; else ``one_folder``.
Anything ambiguous raises a DataError naming the ``layout=`` to pass. A
folder where nothing pairs (no sub-folder pair and no images of its own) is
an error that lists its sub-folders, so the ones to pass are in view.

Any other naming: list the pairs in a CSV file, one ``input,target`` line
each (paths relative to the CSV file's folder, or absolute; an optional
``input,target`` header; blank lines and ``#`` comments skipped), read by
:func:`pairs_from_csv` or ``find_pairs(pairs_csv=...)``, ``--pairs`` on
the command line. A missing file, a missing image (with its line number),
a line without two fields and an input listed twice are DataErrors naming
the file and line.

The one-sub-folder (PReNet) layout is refused as ambiguous when the folder
holds more than one recognised sub-folder of the one role (``rain/`` and
``rainy/``), when the folder's own images split into degraded and clean by
role words (a ``one_folder`` set beside the sub-folder: pass
``layout='one_folder'`` or both folders), or when every one of them is
named with the sub-folder's own role (``rainy/`` beside ``rain-001.png``:
both sides would be degraded). Two-folder RESIDE names
also cover Rain1400 (``rainy_image/901_3.jpg`` <-> ``ground_truth/901.jpg``,
14 rainy images per clean one; its clean images are the inputs' size, so the
SOTS border is never applied).

Layouts looked at and left out: super-resolution sets (DIV2K ``LR``/``HR``)
pair by these rules but their sizes differ, which :func:`load_pair`
refuses; GoPro's per-sequence ``<scene>/blur`` + ``<scene>/sharp`` folders
pair one scene at a time (no recursion over scenes); SIDD's per-scene
folders likewise.

The package's modules: ``records`` (:class:`Pair`, :func:`load_pair`),
``names`` (pairing by file names), ``folders`` (finding the folders of a
layout), ``pairs_csv`` (:func:`pairs_from_csv`); everything is imported from
here.
"""

import os

from erlrestore.data.image_files import DataError, list_images
from erlrestore.data.pairing.folders import (
    INPUT_FOLDER_NAMES,
    TARGET_FOLDER_NAMES,
    pairs_in_one_folder,
    pairs_in_two_folders,
    same_folder,
)
from erlrestore.data.pairing.names import INPUT_WORDS, RESIDE_BORDER, TARGET_WORDS
from erlrestore.data.pairing.pairs_csv import pairs_from_csv
from erlrestore.data.pairing.records import LAYOUTS, PAIR_ORDERS, Pair, load_pair

__all__ = [
    "INPUT_FOLDER_NAMES",
    "INPUT_WORDS",
    "LAYOUTS",
    "PAIR_ORDERS",
    "RESIDE_BORDER",
    "TARGET_FOLDER_NAMES",
    "TARGET_WORDS",
    "Pair",
    "find_pairs",
    "load_pair",
    "pairs_from_csv",
]


def find_pairs(input_dir=None, target_dir=None, *, layout="auto", pair_order="", pairs_csv=None):
    """Finds the (degraded, clean) image pairs of a benchmark folder layout.

    Args:
      input_dir: folder of degraded images (or holding one ``X<k>`` scale
        folder of them); or, alone, a folder holding a sub-folder pair, one
        recognised sub-folder beside images of the other role (PReNet),
        both kinds of images, or side-by-side images.
      target_dir: folder of clean images; None (or ``input_dir`` itself) for
        the one-folder layouts.
      layout: one of LAYOUTS (see the module docstring); "auto" picks one only
        when the names leave no doubt.
      pair_order: "input_left" or "target_left", which half of a side-by-side
        image is the degraded one. Required by ``layout="side_by_side"``;
        given with ``layout="auto"`` it selects side_by_side (an explicit
        choice, not a guess).
      pairs_csv: a CSV file listing the pairs (:func:`pairs_from_csv`),
        for names no layout pairs; given instead of the folders, layout and
        pair order.

    Returns:
      Pairs sorted by input path (a ``pairs_csv``'s in its order). Clean
      images without a degraded partner are allowed (benchmarks ship
      extras) and logged as a warning.

    Raises:
      DataError: unknown layout or pair order, missing/empty folders, degraded
        images without a partner, a clean image claimed by two degraded ones
        (outside RESIDE), or names that fit no convention or several.
    """
    if layout not in LAYOUTS:
        raise DataError(f"unknown layout {layout!r}: choose one of {', '.join(LAYOUTS)}")
    if pair_order not in ("",) + PAIR_ORDERS:
        raise DataError(f"unknown pair_order {pair_order!r}: choose one of {', '.join(PAIR_ORDERS)}")
    if pairs_csv:
        given = [f"{name}={value}" for name, value in (
            ("input_dir", input_dir), ("target_dir", target_dir), ("layout", layout != "auto" and layout),
            ("pair_order", pair_order)) if value]
        if given:
            raise DataError(f"pairs_csv={os.fspath(pairs_csv)} lists the pairs itself; it takes no "
                            f"{', '.join(given)}")
        return pairs_from_csv(pairs_csv)
    if pair_order and layout == "auto":
        layout = "side_by_side"
    if pair_order and layout != "side_by_side":
        raise DataError(
            f"pair_order={pair_order!r} only applies to layout='side_by_side', not {layout!r}"
        )
    if input_dir is None:
        raise DataError("no images to pair: give input_dir (a folder) or pairs_csv (a CSV file of input,target "
                        "lines)")
    input_dir = os.fspath(input_dir)
    target_dir = None if target_dir is None else os.fspath(target_dir)
    # The same folder twice is one-folder pairing, unless layout="folders" asks
    # to pair every image with itself (measuring a set against itself).
    single = target_dir is None or (layout != "folders" and same_folder(input_dir, target_dir))

    if layout == "side_by_side":
        if not pair_order:
            raise DataError(
                "layout='side_by_side' needs pair_order='input_left' or 'target_left' (which half "
                f"of each image in {input_dir} is the degraded input)"
            )
        if not single:
            raise DataError(
                f"layout='side_by_side' reads one folder; got input_dir={input_dir} and "
                f"target_dir={target_dir}"
            )
        pairs = [Pair(p, p, side_by_side=pair_order) for p in list_images(input_dir)]
    elif single:
        pairs = pairs_in_one_folder(input_dir, layout)
    elif layout == "one_folder":
        raise DataError(
            f"layout='one_folder' reads one folder; got input_dir={input_dir} and "
            f"target_dir={target_dir} (use layout='folders')"
        )
    else:
        pairs = pairs_in_two_folders(input_dir, target_dir, layout)
    return sorted(pairs, key=lambda p: p.input_path)
