"""Finding the degraded and clean folders of a benchmark layout, and pairing the files in them.

:func:`pairs_in_one_folder` reads one folder: a recognised sub-folder pair,
a level-named degraded sub-folder beside a clean one, one sub-folder beside
images of the other role (PReNet), RESIDE names or role words in one folder;
:func:`pairs_in_two_folders` reads a degraded and a clean folder (through a
JORDER ``X<k>`` scale folder). The names are then paired by
:mod:`erlrestore.data.pairing.names`; the module docstring of
:mod:`erlrestore.data.pairing` gives every rule.
"""

import os
import re

from absl import logging

from erlrestore.data.image_files import DataError, is_image_file, list_images
from erlrestore.data.pairing.names import (
    BARE_ID,
    INPUT_WORDS,
    MAX_LISTED,
    RESIDE_HAZY,
    TARGET_WORDS,
    file_stem,
    listing,
    looks_reside,
    marked,
    match_by_name,
    match_reside,
    split_by_role,
)

# Sub-folder names (compared in lower case) recognised by find_pairs(one folder).
INPUT_FOLDER_NAMES = (
    "rain", "rainy", "input", "inputs", "in", "hazy", "noisy", "lq", "degraded", "data",
    "rainy_image", "rainy_images", "low", "lr", "blur", "blurred", "blurry",
)
TARGET_FOLDER_NAMES = (
    "norain", "clean", "target", "targets", "gt", "clear", "groundtruth", "ground_truth",
    "ground-truth", "label", "labels", "high", "hr", "hq", "sharp",
)

# A sub-folder named as one of INPUT_FOLDER_NAMES followed by a level or other
# suffix (rain100mm, rain_heavy, rain-light, hazy_0.8) is a degraded set too,
# unless a word of the suffix says it holds something else.
_LEVEL_SUFFIX = re.compile(r"^(?:[_\-. ]+[a-z0-9]|\d)")
_NOT_A_LEVEL = frozenset(TARGET_FOLDER_NAMES + TARGET_WORDS + (
    "mask", "masks", "streak", "streaks", "region", "regions", "layer", "layers", "map", "maps",
))

_SCALE_FOLDER = re.compile(r"^[xX]\d+$")


def same_folder(a, b):
    """Whether ``a`` and ``b`` are one folder (by the file system, else by normalised absolute path)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.normpath(os.path.abspath(a)) == os.path.normpath(os.path.abspath(b))


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
    text = ", ".join(n + "/" for n in names[:MAX_LISTED])
    if len(names) > MAX_LISTED:
        text += f", ... (and {len(names) - MAX_LISTED} more)"
    return f"its sub-folders: {text}"


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
        split = split_by_role(folder, images)
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
    if all(marked(p, own, others) for p in images):
        raise DataError(
            f"{folder} is ambiguous: its {name}/ sub-folder holds {role} images, but the images beside it "
            f"are named as {role} images too ({listing(images)}), so neither side is the {other} one. "
            "Pass input_dir and target_dir explicitly"
        )
    return (sub, folder) if is_input else (folder, sub)


def pairs_in_one_folder(folder, layout):
    if not os.path.isdir(folder):
        list_images(folder)  # raises the "does not exist" / "not a folder" DataError
    if layout in ("auto", "folders", "reside"):
        found = _subfolder_layout(folder)
        if found:
            return pairs_in_two_folders(found[0], found[1], layout)
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
    hazy = [p for p in images if RESIDE_HAZY.match(file_stem(p))]
    clean = [p for p in images if BARE_ID.match(file_stem(p))]
    if layout == "reside" or (
        layout == "auto" and hazy and clean and len(hazy) + len(clean) == len(images)
    ):
        if not hazy:
            raise DataError(
                f"{folder} holds no RESIDE hazy images (names like 1400_3.png or 0001_0.8_0.2.jpg)"
            )
        hazy_set = set(hazy)
        rest = [p for p in images if p not in hazy_set]
        return match_reside(hazy, rest, folder, folder)
    inputs, targets = split_by_role(folder, images)
    return match_by_name(list(inputs), list(targets), folder, folder)


def pairs_in_two_folders(input_dir, target_dir, layout):
    input_dir = _scale_folder(input_dir)
    inputs = list_images(input_dir)
    targets = list_images(target_dir)
    if layout == "reside" or (layout == "auto" and looks_reside(inputs, targets)):
        return match_reside(inputs, targets, input_dir, target_dir, bare_inputs=True)
    return match_by_name(inputs, targets, input_dir, target_dir)
