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
"""

import collections
import csv
import dataclasses
import os
import re

import numpy as np
from absl import logging

from erlrestore.data.image_files import IMAGE_EXTENSIONS, DataError, is_image_file, list_images, read_image

LAYOUTS = ("auto", "folders", "one_folder", "reside", "side_by_side")
PAIR_ORDERS = ("input_left", "target_left")

# Sub-folder names (compared in lower case) recognised by find_pairs(one folder).
INPUT_FOLDER_NAMES = (
    "rain", "rainy", "input", "inputs", "in", "hazy", "noisy", "lq", "degraded", "data",
    "rainy_image", "rainy_images", "low", "lr", "blur", "blurred", "blurry",
)
TARGET_FOLDER_NAMES = (
    "norain", "clean", "target", "targets", "gt", "clear", "groundtruth", "ground_truth",
    "ground-truth", "label", "labels", "high", "hr", "hq", "sharp",
)
# Role words (whole tokens, any case) that mark files in a one_folder layout.
INPUT_WORDS = ("rain", "rainy", "input", "hazy", "noisy", "lq", "degraded", "real")
TARGET_WORDS = ("norain", "clean", "target", "gt", "clear", "groundtruth", "mean", "label")

# A sub-folder named as one of INPUT_FOLDER_NAMES followed by a level or other
# suffix (rain100mm, rain_heavy, rain-light, hazy_0.8) is a degraded set too,
# unless a word of the suffix says it holds something else.
_LEVEL_SUFFIX = re.compile(r"^(?:[_\-. ]+[a-z0-9]|\d)")
_NOT_A_LEVEL = frozenset(TARGET_FOLDER_NAMES + TARGET_WORDS + (
    "mask", "masks", "streak", "streaks", "region", "regions", "layer", "layers", "map", "maps",
))
# Setting tags a degraded name adds to its clean image's name: _s80_a04
# (Outdoor-Rain's streak and atmosphere settings), _3, _sigma25, -0.8.
_SETTING_TAGS = re.compile(r"^(?:[_-][A-Za-z]*\d+(?:\.\d+)?)+$")

RESIDE_BORDER = 10
_RESIDE_HAZY = re.compile(r"^\d+(_[\d.]+)+$")
_BARE_ID = re.compile(r"^\d+$")
_TOKEN = re.compile(r"[A-Za-z]+|\d+")
_SCALE_FOLDER = re.compile(r"^[xX]\d+$")
_MAX_LISTED = 20


@dataclasses.dataclass(frozen=True)
class Pair:
    """One degraded/clean pair of files.

    Attributes:
      input_path: the degraded image.
      target_path: the clean image (the same file for side-by-side images).
      side_by_side: "" for two files, or "input_left" / "target_left" when one
        file holds both halves.
      target_border: crop this many pixels from every side of the target when,
        and only when, it is exactly ``2 * target_border`` larger than the
        input in both height and width (RESIDE SOTS-indoor).
    """

    input_path: str
    target_path: str
    side_by_side: str = ""
    target_border: int = 0

    @property
    def name(self) -> str:
        """A short display key: the input file's name (unique within a pair list)."""
        return os.path.basename(self.input_path)


def _listing(paths):
    """``a.png, b.png, ... (and N more)`` for error messages."""
    names = [os.path.basename(p) for p in paths]
    text = ", ".join(names[:_MAX_LISTED])
    if len(names) > _MAX_LISTED:
        text += f", ... (and {len(names) - _MAX_LISTED} more)"
    return text


def _stem(path):
    return os.path.splitext(os.path.basename(path))[0]


def _tokens(stem):
    """Letter runs (lower case) and digit runs (as numbers) of a file stem."""
    return tuple(
        str(int(t)) if t.isdigit() else t.lower() for t in _TOKEN.findall(stem)
    )


def _same_folder(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.normpath(os.path.abspath(a)) == os.path.normpath(os.path.abspath(b))


def _warn_unused_targets(targets, used, where):
    unused = sorted(set(targets) - set(used))
    if unused:
        logging.warning(
            "%d clean image(s) in %s have no degraded partner and are not used: %s",
            len(unused), where, _listing(unused),
        )


def _check_assignment(assignment, unmatched, input_where, target_where, shared_targets=False):
    """Validates {input: target}; returns sorted Pairs' (input, target) tuples."""
    if unmatched:
        raise DataError(
            f"{len(unmatched)} degraded image(s) in {input_where} have no clean partner in "
            f"{target_where}: {_listing(sorted(unmatched))}. If the files follow another naming "
            f"convention, pass layout= (one of {', '.join(LAYOUTS[1:])})"
        )
    if not shared_targets:
        claims = collections.defaultdict(list)
        for inp, tgt in assignment.items():
            claims[tgt].append(inp)
        for tgt, inputs in sorted(claims.items()):
            if len(inputs) > 1:
                raise DataError(
                    f"clean image {tgt} is claimed by {len(inputs)} degraded images: "
                    f"{_listing(sorted(inputs))}"
                )
    return sorted(assignment.items())


def _scale_tag(input_tokens, target_tokens):
    """The ``("x", k)`` tokens ending every input stem and no target stem, or None.

    ``norain-1x2`` -> ``(..., "1", "x", "2")``: JORDER's Rain100H/L ``rain/X2``
    images and DIV2K's ``X2`` images carry the scale after the clean name.
    Something must remain of every input stem once the tag is removed.
    """
    input_tokens, target_tokens = list(input_tokens), list(target_tokens)
    ends = {toks[-2:] for toks in input_tokens}
    if len(ends) != 1:
        return None
    (end,) = ends
    if len(end) != 2 or end[0] != "x" or not end[1].isdigit():
        return None
    if any(len(toks) <= 2 for toks in input_tokens) or any(toks[-2:] == end for toks in target_tokens):
        return None
    return end


def _variant_candidates(inputs, targets):
    """{input: the clean images whose stem the input's stem is, or extends by setting tags}.

    ``im_0001_s80_a04`` -> ``im_0001`` (Outdoor-Rain); several degraded
    variants may share one clean image.
    """
    by_stem = collections.defaultdict(list)
    for t in targets:
        by_stem[_stem(t)].append(t)
    found = {}
    for i in inputs:
        stem = _stem(i)
        candidates = list(by_stem.get(stem, []))
        for cut in range(1, len(stem)):
            if stem[cut] in "_-" and _SETTING_TAGS.match(stem[cut:]):
                candidates += by_stem.get(stem[:cut], [])
        found[i] = candidates
    return found


def _match_by_name(inputs, targets, input_where, target_where):
    """Pairs two lists of files by stem, by stem plus setting tags, or by stem minus role tokens."""
    by_stem = collections.defaultdict(list)
    for t in targets:
        by_stem[_stem(t)].append(t)
    variants = None
    if all(_stem(i) in by_stem for i in inputs):
        keyed, key_of = by_stem, _stem
    elif all((variants := _variant_candidates(inputs, targets)).values()):
        keyed, key_of = variants, lambda path: path
    else:
        in_tokens = {i: _tokens(_stem(i)) for i in inputs}
        tg_tokens = {t: _tokens(_stem(t)) for t in targets}
        scale = _scale_tag(in_tokens.values(), tg_tokens.values())
        if scale:
            in_tokens = {i: toks[:-2] for i, toks in in_tokens.items()}
        in_all = set.intersection(*(set(v) for v in in_tokens.values()))
        tg_all = set.intersection(*(set(v) for v in tg_tokens.values()))
        in_any = set().union(*(set(v) for v in in_tokens.values()))
        tg_any = set().union(*(set(v) for v in tg_tokens.values()))
        in_strip, tg_strip = in_all - tg_any, tg_all - in_any
        keyed = collections.defaultdict(list)
        for t, toks in tg_tokens.items():
            keyed[tuple(x for x in toks if x not in tg_strip)].append(t)

        def key_of(path):
            return tuple(x for x in in_tokens[path] if x not in in_strip)

    assignment, unmatched = {}, []
    for i in inputs:
        candidates = keyed.get(key_of(i), [])
        if not candidates:
            unmatched.append(i)
        elif len(candidates) > 1:
            raise DataError(
                f"degraded image {i} matches several clean images: {_listing(sorted(candidates))}"
            )
        else:
            assignment[i] = candidates[0]
    shared = keyed is variants
    if unmatched and variants is not None and not shared:
        # Report the naming that explains more of the images (a few strays among Outdoor-Rain names).
        left = [i for i in inputs if not variants[i]]
        if len(left) < len(unmatched):
            unmatched = left
    pairs = _check_assignment(assignment, unmatched, input_where, target_where, shared_targets=shared)
    _warn_unused_targets(targets, assignment.values(), target_where)
    return [Pair(i, t) for i, t in pairs]


def _looks_reside(inputs, targets):
    """Two folders: RESIDE hazy names (some inputs may be bare ids, as in RESIDE's own OTS copies)."""
    return bool(inputs) and bool(targets) and any(
        _RESIDE_HAZY.match(_stem(i)) for i in inputs
    ) and all(
        _RESIDE_HAZY.match(_stem(i)) or _BARE_ID.match(_stem(i)) for i in inputs
    ) and all(_BARE_ID.match(_stem(t)) for t in targets)


def _match_reside(inputs, targets, input_where, target_where, bare_inputs=False):
    """RESIDE: hazy ``<id>_<...>`` pairs with clean ``<id>`` (shared targets allowed).

    ``bare_inputs``: a hazy image in its own folder may also carry the plain
    id (``hazy/0001.jpg`` <-> ``gt/0001.jpg``), as 16 of SOTS-outdoor's do.
    """
    def hazy_name(path):
        return _RESIDE_HAZY.match(_stem(path)) or (bare_inputs and _BARE_ID.match(_stem(path)))

    bad = [i for i in inputs if not hazy_name(i)]
    if bad:
        raise DataError(
            f"{len(bad)} image(s) in {input_where} do not look like RESIDE hazy names "
            f"(id_index or id_A_beta, e.g. 1400_3.png, 0001_0.8_0.2.jpg): {_listing(bad)}"
        )
    by_id = collections.defaultdict(list)
    for t in targets:
        if _BARE_ID.match(_stem(t)):
            by_id[int(_stem(t))].append(t)
    assignment, unmatched = {}, []
    for i in inputs:
        candidates = by_id.get(int(_stem(i).split("_")[0]), [])
        if not candidates:
            unmatched.append(i)
        elif len(candidates) > 1:
            raise DataError(
                f"hazy image {i} matches several clean images: {_listing(sorted(candidates))}"
            )
        else:
            assignment[i] = candidates[0]
    pairs = _check_assignment(assignment, unmatched, input_where, target_where,
                              shared_targets=True)
    _warn_unused_targets(targets, assignment.values(), target_where)
    return [Pair(i, t, target_border=RESIDE_BORDER) for i, t in pairs]


def _image_entries(folder):
    """True when ``folder`` directly holds entries named like images (not hidden)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return False
    return any(not n.startswith(".") and is_image_file(n) and not os.path.isdir(os.path.join(folder, n))
               for n in names)


def _scale_folder(folder):
    """``folder``, or its only ``X<k>`` sub-folder when it holds no images itself (JORDER ``rain/X2``).

    Raises a DataError when such a folder holds several scale folders.
    """
    if not os.path.isdir(folder) or _image_entries(folder):
        return folder
    scales = sorted(
        os.path.join(folder, name) for name in os.listdir(folder)
        if _SCALE_FOLDER.match(name) and os.path.isdir(os.path.join(folder, name))
    )
    if len(scales) > 1:
        raise DataError(
            f"{folder} holds no images but several scale folders "
            f"({', '.join(os.path.basename(p) + '/' for p in scales)}); pass the one to use as input_dir"
        )
    if scales:
        logging.info("reading the degraded images of %s from its scale folder %s", folder, scales[0])
        return scales[0]
    return folder


def _recognised_subfolders(folder):
    """(input sub-folders, target sub-folders) of ``folder`` with recognised names, sorted."""
    inputs, targets = [], []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if name.startswith(".") or not os.path.isdir(path):
            continue
        if name.lower() in INPUT_FOLDER_NAMES:
            inputs.append(path)
        elif name.lower() in TARGET_FOLDER_NAMES:
            targets.append(path)
    return inputs, targets


def _is_level_name(name):
    """True for an input role name followed by a level or other suffix: ``rain100mm``, ``rain_heavy``."""
    name = name.lower()
    for word in INPUT_FOLDER_NAMES:
        rest = name[len(word):]
        if name.startswith(word) and _LEVEL_SUFFIX.match(rest):
            if not set(re.findall(r"[a-z]+", rest)) & _NOT_A_LEVEL:
                return True
    return False


def _level_subfolders(folder):
    """Sub-folders of ``folder`` named as degraded sets of one level (``rain100mm/``, ``rain-light/``), sorted."""
    return [
        os.path.join(folder, name) for name in sorted(os.listdir(folder))
        if not name.startswith(".") and os.path.isdir(os.path.join(folder, name)) and _is_level_name(name)
    ]


def _subfolders_text(folder):
    """``its sub-folders: a/, b/`` (or ``it has no sub-folders``) for errors when nothing in ``folder`` pairs."""
    try:
        names = sorted(n for n in os.listdir(folder)
                       if not n.startswith(".") and os.path.isdir(os.path.join(folder, n)))
    except OSError:
        return "its sub-folders cannot be listed"
    if not names:
        return "it has no sub-folders"
    text = ", ".join(n + "/" for n in names[:_MAX_LISTED])
    if len(names) > _MAX_LISTED:
        text += f", ... (and {len(names) - _MAX_LISTED} more)"
    return f"its sub-folders: {text}"


def _marked(path, words, other_words):
    """True when ``path``'s stem holds one of ``words`` and none of ``other_words`` as a token."""
    tokens = set(_tokens(_stem(path)))
    return bool(tokens & set(words)) and not tokens & set(other_words)


def _subfolder_layout(folder):
    """(input_dir, target_dir) from ``folder``'s sub-folders, or None (module docstring).

    A recognised sub-folder pair wins; else a degraded sub-folder named with
    a level (``rain100mm/``) beside a recognised clean one; else one
    recognised sub-folder beside images in ``folder`` itself (PReNet).
    Raises a DataError when that is ambiguous.
    """
    inputs, targets = _recognised_subfolders(folder)
    pairs = [(i, t) for i in inputs for t in targets]
    levels = _level_subfolders(folder) if targets else []
    if len(pairs) == 1 and levels:
        logging.info("%s: pairing %s/ with %s/; the level folders %s are not used", folder,
                     os.path.basename(pairs[0][0]), os.path.basename(pairs[0][1]),
                     ", ".join(os.path.basename(p) + "/" for p in levels))
    elif not pairs:
        pairs = [(i, t) for i in levels for t in targets]
    if len(pairs) > 1:
        listed = ", ".join(f"{os.path.basename(i)}/ + {os.path.basename(t)}/" for i, t in pairs)
        raise DataError(
            f"{folder} holds several degraded/clean sub-folder pairs ({listed}); pass "
            "input_dir and target_dir explicitly"
        )
    if pairs:
        return pairs[0]
    subs = inputs or targets
    if not subs or not _image_entries(folder):
        return None
    is_input = bool(inputs)
    role, other = ("degraded", "clean") if is_input else ("clean", "degraded")
    if len(subs) > 1:
        raise DataError(
            f"{folder} holds images and several {role}-image sub-folders "
            f"({', '.join(os.path.basename(p) + '/' for p in subs)}); cannot tell which one pairs with the "
            "images beside them: pass input_dir and target_dir explicitly"
        )
    sub = subs[0]
    name = os.path.basename(sub)
    images = list_images(folder)
    try:
        split = _split_by_role(folder, images)
    except DataError:
        split = None
    if split:
        raise DataError(
            f"{folder} is ambiguous: it holds a {name}/ sub-folder of {role} images, and its own images "
            f"are named as both degraded and clean (e.g. {os.path.basename(split[0][0])} / "
            f"{os.path.basename(split[1][0])}). Pass layout='one_folder' to pair the images in {folder} "
            "by name, or input_dir and target_dir"
        )
    own, others = (INPUT_WORDS, TARGET_WORDS) if is_input else (TARGET_WORDS, INPUT_WORDS)
    if all(_marked(p, own, others) for p in images):
        raise DataError(
            f"{folder} is ambiguous: its {name}/ sub-folder holds {role} images, but the images beside it "
            f"are named as {role} images too ({_listing(images)}), so neither side is the {other} one. "
            "Pass input_dir and target_dir explicitly"
        )
    return (sub, folder) if is_input else (folder, sub)


def _split_by_role(folder, images):
    """Splits one folder's images into (inputs, targets) by a role word."""
    tokens = {p: set(_tokens(_stem(p))) for p in images}
    partitions = {}  # (inputs, targets) -> [(input word, target word)]
    partial = []  # (number left over, word pair, left over files)
    for a in INPUT_WORDS:
        for b in TARGET_WORDS:
            ins = tuple(p for p in images if a in tokens[p] and b not in tokens[p])
            tgs = tuple(p for p in images if b in tokens[p] and a not in tokens[p])
            if not ins or not tgs or any(a in tokens[p] and b in tokens[p] for p in images):
                continue
            rest = [p for p in images if a not in tokens[p] and b not in tokens[p]]
            if rest:
                partial.append((len(rest), (a, b), rest))
            else:
                partitions.setdefault((ins, tgs), []).append((a, b))
    if len(partitions) == 1:
        return next(iter(partitions))
    if len(partitions) > 1:
        words = "; ".join(
            " or ".join(f"{a!r}/{b!r}" for a, b in pairs) for pairs in partitions.values()
        )
        raise DataError(
            f"cannot tell degraded from clean images in {folder}: the names fit several "
            f"conventions ({words}). Pass target_dir, or put the images in two folders"
        )
    if partial:
        _, (a, b), rest = min(partial, key=lambda item: item[0])
        raise DataError(
            f"{len(rest)} image(s) in {folder} are marked neither {a!r} (degraded) nor {b!r} "
            f"(clean): {_listing(rest)}"
        )
    raise DataError(
        f"cannot tell degraded from clean images in {folder}: expected names like "
        "rain-001.png / norain-001.png, X_real.JPG / X_mean.JPG, 0001_NOISY_SRGB_010.PNG / "
        "0001_GT_SRGB_010.PNG, X_input / X_target or X_lq / X_gt, or sub-folders such as "
        "rain/ + norain/. Pass target_dir for two folders, or layout='side_by_side' with "
        "pair_order='input_left' or 'target_left' when each image holds both halves"
    )


def _pairs_in_one_folder(folder, layout):
    if not os.path.isdir(folder):
        list_images(folder)  # raises the "does not exist" / "not a folder" DataError
    if layout in ("auto", "folders", "reside"):
        found = _subfolder_layout(folder)
        if found:
            return _pairs_in_two_folders(found[0], found[1], layout)
        if layout == "folders":
            raise DataError(
                f"{folder} holds no degraded/clean sub-folder pair (looked for one of "
                f"{', '.join(INPUT_FOLDER_NAMES)} with one of {', '.join(TARGET_FOLDER_NAMES)} (the degraded "
                "one may add a level: rain100mm, rain_heavy), or one of them beside images in the folder "
                f"itself); {_subfolders_text(folder)}; pass target_dir, "
                "or input_dir and target_dir, or list the pairs in a CSV file (pairs_csv)"
            )
    try:
        images = list_images(folder)
    except DataError as exc:
        what = "" if layout != "auto" else ", and no degraded/clean sub-folder pair (such as rain/ + norain/)"
        raise DataError(
            f"{exc}{what}; {_subfolders_text(folder)}. Pass the degraded and clean folders as input_dir and "
            "target_dir, or list the pairs in a CSV file (pairs_csv)"
        ) from None
    hazy = [p for p in images if _RESIDE_HAZY.match(_stem(p))]
    clean = [p for p in images if _BARE_ID.match(_stem(p))]
    if layout == "reside" or (
        layout == "auto" and hazy and clean and len(hazy) + len(clean) == len(images)
    ):
        if not hazy:
            raise DataError(
                f"{folder} holds no RESIDE hazy images (names like 1400_3.png or 0001_0.8_0.2.jpg)"
            )
        hazy_set = set(hazy)
        rest = [p for p in images if p not in hazy_set]
        return _match_reside(hazy, rest, folder, folder)
    inputs, targets = _split_by_role(folder, images)
    return _match_by_name(list(inputs), list(targets), folder, folder)


def _pairs_in_two_folders(input_dir, target_dir, layout):
    input_dir = _scale_folder(input_dir)
    inputs = list_images(input_dir)
    targets = list_images(target_dir)
    if layout == "reside" or (layout == "auto" and _looks_reside(inputs, targets)):
        return _match_reside(inputs, targets, input_dir, target_dir, bare_inputs=True)
    return _match_by_name(inputs, targets, input_dir, target_dir)


def pairs_from_csv(path):
    """The pairs a CSV file lists, in its order: one ``input,target`` line per pair.

    Paths are relative to the CSV file's folder, or absolute. A first line
    ``input,target`` (any case) is a header; blank lines and lines starting
    with ``#`` are skipped; a field holding a comma is quoted as CSV quotes
    it. Several inputs may share one target.

    Raises:
      DataError naming the file (and line): the file is missing or
        unreadable, a line has not exactly two non-empty fields, a listed
        file is missing or not an image file, an input is listed twice, or
        no pair is listed.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataError(f"pairs file {path} does not exist")
    if not os.path.isfile(path):
        raise DataError(f"pairs file {path} is not a file")
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"pairs file {path} cannot be read: {exc}") from exc
    base = os.path.dirname(path)
    pairs, first_line, header_possible = [], {}, True
    for number, line in enumerate(lines, start=1):
        where = f"{path}, line {number}"
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = [field.strip() for field in next(csv.reader([line]))]
        is_header = header_possible and [f.lower() for f in fields] == ["input", "target"]
        header_possible = False  # only the first line that is not blank or a comment
        if is_header:
            continue
        if len(fields) != 2 or not all(fields):
            raise DataError(f"{where}: expected two fields, input,target; got {line.strip()!r}")
        files = [os.path.normpath(os.path.join(base, field)) for field in fields]
        for role, file in zip(("input", "target"), files):
            if not os.path.isfile(file):
                missing = "does not exist" if not os.path.exists(file) else "is not a file"
                raise DataError(f"{where}: {role} image {file} {missing}")
            if not is_image_file(file):
                raise DataError(f"{where}: {role} {file} is not an image file (the extension is not one of "
                                f"{', '.join(IMAGE_EXTENSIONS)})")
        key = os.path.normcase(os.path.realpath(files[0]))
        if key in first_line:
            raise DataError(f"{where}: input {files[0]} is listed again (first on line {first_line[key]})")
        first_line[key] = number
        pairs.append(Pair(files[0], files[1]))
    if not pairs:
        raise DataError(f"pairs file {path} lists no pairs (expected input,target lines)")
    return pairs


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
    single = target_dir is None or (layout != "folders" and _same_folder(input_dir, target_dir))

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
        pairs = _pairs_in_one_folder(input_dir, layout)
    elif layout == "one_folder":
        raise DataError(
            f"layout='one_folder' reads one folder; got input_dir={input_dir} and "
            f"target_dir={target_dir} (use layout='folders')"
        )
    else:
        pairs = _pairs_in_two_folders(input_dir, target_dir, layout)
    return sorted(pairs, key=lambda p: p.input_path)


def load_pair(pair):
    """Decodes ``pair`` into (input, target) float32 RGB arrays of equal size.

    Side-by-side images are split into halves (an odd width is a DataError
    naming the file). A target exactly ``2 * pair.target_border`` larger than
    the input in height and width is cropped by that border on every side
    (RESIDE SOTS-indoor); any other size difference is a DataError naming both
    files and both sizes.
    """
    if pair.side_by_side:
        if pair.side_by_side not in PAIR_ORDERS:
            raise DataError(
                f"{pair.input_path}: unknown side_by_side order {pair.side_by_side!r} "
                f"(choose one of {', '.join(PAIR_ORDERS)})"
            )
        image = read_image(pair.input_path)
        height, width = image.shape[:2]
        if width % 2:
            raise DataError(
                f"side-by-side image {pair.input_path} has odd width {width} "
                f"({width}x{height}); cannot split it into two equal halves"
            )
        left, right = image[:, : width // 2], image[:, width // 2 :]
        if pair.side_by_side == "input_left":
            return np.ascontiguousarray(left), np.ascontiguousarray(right)
        return np.ascontiguousarray(right), np.ascontiguousarray(left)

    inp = read_image(pair.input_path)
    tgt = read_image(pair.target_path)
    (ih, iw), (th, tw) = inp.shape[:2], tgt.shape[:2]
    b = pair.target_border
    if b and (th, tw) == (ih + 2 * b, iw + 2 * b):
        tgt = np.ascontiguousarray(tgt[b : th - b, b : tw - b])
    elif (th, tw) != (ih, iw):
        raise DataError(
            f"size mismatch: input {pair.input_path} is {iw}x{ih} but target {pair.target_path} "
            f"is {tw}x{th} (width x height)"
        )
    return inp, tgt
