"""Pairing files by their names: tokens, role words, setting and scale tags, RESIDE ids.

The rules of :mod:`erlrestore.data.pairing` that look only at file names:
:func:`match_by_name` pairs two lists of files (identical stems, stems plus
setting tags, or stems without the tokens that mark a side's role),
:func:`match_reside` pairs RESIDE hazy names with clean ids, and
:func:`split_by_role` splits one folder's files into degraded and clean by a
role word. Errors name the files (:func:`listing`).
"""

import collections
import os
import re

from absl import logging

from erlrestore.data.image_files import DataError
from erlrestore.data.pairing.records import LAYOUTS, Pair

# Role words (whole tokens, any case) that mark files in a one_folder layout.
INPUT_WORDS = ("rain", "rainy", "input", "hazy", "noisy", "lq", "degraded", "real")
TARGET_WORDS = ("norain", "clean", "target", "gt", "clear", "groundtruth", "mean", "label")

# Setting tags a degraded name adds to its clean image's name: _s80_a04
# (Outdoor-Rain's streak and atmosphere settings), _3, _sigma25, -0.8.
_SETTING_TAGS = re.compile(r"^(?:[_-][A-Za-z]*\d+(?:\.\d+)?)+$")

RESIDE_BORDER = 10
RESIDE_HAZY = re.compile(r"^\d+(_[\d.]+)+$")
BARE_ID = re.compile(r"^\d+$")
_TOKEN = re.compile(r"[A-Za-z]+|\d+")

MAX_LISTED = 20


def listing(paths):
    """``a.png, b.png, ... (and N more)`` for error messages."""
    names = [os.path.basename(p) for p in paths]
    text = ", ".join(names[:MAX_LISTED])
    if len(names) > MAX_LISTED:
        text += f", ... (and {len(names) - MAX_LISTED} more)"
    return text


def file_stem(path):
    """The file name of ``path`` without its extension."""
    return os.path.splitext(os.path.basename(path))[0]


def name_tokens(stem):
    """Letter runs (lower case) and digit runs (as numbers) of a file stem."""
    return tuple(
        str(int(t)) if t.isdigit() else t.lower() for t in _TOKEN.findall(stem)
    )


def _warn_unused_targets(targets, used, where):
    unused = sorted(set(targets) - set(used))
    if unused:
        logging.warning(
            "%d clean image(s) in %s have no degraded partner and are not used: %s",
            len(unused), where, listing(unused),
        )


def _check_assignment(assignment, unmatched, input_where, target_where, shared_targets=False):
    """Validates {input: target}; returns sorted Pairs' (input, target) tuples."""
    if unmatched:
        raise DataError(
            f"{len(unmatched)} degraded image(s) in {input_where} have no clean partner in "
            f"{target_where}: {listing(sorted(unmatched))}. If the files follow another naming "
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
                    f"{listing(sorted(inputs))}"
                )
    return sorted(assignment.items())


def _assign(inputs, candidates_of, kind):
    """``({input: its one clean image}, [inputs with none])``; an input with several is a DataError.

    ``candidates_of(input)`` lists the clean images an input's name fits;
    ``kind`` names the inputs in the error (``"degraded"``, ``"hazy"``).
    """
    assignment, unmatched = {}, []
    for i in inputs:
        candidates = candidates_of(i)
        if not candidates:
            unmatched.append(i)
        elif len(candidates) > 1:
            raise DataError(f"{kind} image {i} matches several clean images: {listing(sorted(candidates))}")
        else:
            assignment[i] = candidates[0]
    return assignment, unmatched


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
        by_stem[file_stem(t)].append(t)
    found = {}
    for i in inputs:
        stem = file_stem(i)
        candidates = list(by_stem.get(stem, []))
        for cut in range(1, len(stem)):
            if stem[cut] in "_-" and _SETTING_TAGS.match(stem[cut:]):
                candidates += by_stem.get(stem[:cut], [])
        found[i] = candidates
    return found


def match_by_name(inputs, targets, input_where, target_where):
    """Pairs two lists of files by stem, by stem plus setting tags, or by stem minus role tokens."""
    by_stem = collections.defaultdict(list)
    for t in targets:
        by_stem[file_stem(t)].append(t)
    variants = None
    if all(file_stem(i) in by_stem for i in inputs):
        keyed, key_of = by_stem, file_stem
    elif all((variants := _variant_candidates(inputs, targets)).values()):
        keyed, key_of = variants, lambda path: path
    else:
        in_tokens = {i: name_tokens(file_stem(i)) for i in inputs}
        tg_tokens = {t: name_tokens(file_stem(t)) for t in targets}
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

    assignment, unmatched = _assign(inputs, lambda i: keyed.get(key_of(i), []), "degraded")
    shared = keyed is variants
    if unmatched and variants is not None and not shared:
        # Report the naming that explains more of the images (a few strays among Outdoor-Rain names).
        left = [i for i in inputs if not variants[i]]
        if len(left) < len(unmatched):
            unmatched = left
    pairs = _check_assignment(assignment, unmatched, input_where, target_where, shared_targets=shared)
    _warn_unused_targets(targets, assignment.values(), target_where)
    return [Pair(i, t) for i, t in pairs]


def looks_reside(inputs, targets):
    """Two folders: RESIDE hazy names (some inputs may be bare ids, as in RESIDE's own OTS copies)."""
    return bool(inputs) and bool(targets) and any(
        RESIDE_HAZY.match(file_stem(i)) for i in inputs
    ) and all(
        RESIDE_HAZY.match(file_stem(i)) or BARE_ID.match(file_stem(i)) for i in inputs
    ) and all(BARE_ID.match(file_stem(t)) for t in targets)


def match_reside(inputs, targets, input_where, target_where, bare_inputs=False):
    """RESIDE: hazy ``<id>_<...>`` pairs with clean ``<id>`` (shared targets allowed).

    ``bare_inputs``: a hazy image in its own folder may also carry the plain
    id (``hazy/0001.jpg`` <-> ``gt/0001.jpg``), as 16 of SOTS-outdoor's do.
    """
    def hazy_name(path):
        return RESIDE_HAZY.match(file_stem(path)) or (bare_inputs and BARE_ID.match(file_stem(path)))

    bad = [i for i in inputs if not hazy_name(i)]
    if bad:
        raise DataError(
            f"{len(bad)} image(s) in {input_where} do not look like RESIDE hazy names "
            f"(id_index or id_A_beta, e.g. 1400_3.png, 0001_0.8_0.2.jpg): {listing(bad)}"
        )
    by_id = collections.defaultdict(list)
    for t in targets:
        if BARE_ID.match(file_stem(t)):
            by_id[int(file_stem(t))].append(t)
    assignment, unmatched = _assign(inputs, lambda i: by_id.get(int(file_stem(i).split("_")[0]), []), "hazy")
    pairs = _check_assignment(assignment, unmatched, input_where, target_where,
                              shared_targets=True)
    _warn_unused_targets(targets, assignment.values(), target_where)
    return [Pair(i, t, target_border=RESIDE_BORDER) for i, t in pairs]


def marked(path, words, other_words):
    """True when ``path``'s stem holds one of ``words`` and none of ``other_words`` as a token."""
    tokens = set(name_tokens(file_stem(path)))
    return bool(tokens & set(words)) and not tokens & set(other_words)


def split_by_role(folder, images):
    """Splits one folder's images into (inputs, targets) by a role word."""
    tokens = {p: set(name_tokens(file_stem(p))) for p in images}
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
            f"(clean): {listing(rest)}"
        )
    raise DataError(
        f"cannot tell degraded from clean images in {folder}: expected names like "
        "rain-001.png / norain-001.png, X_real.JPG / X_mean.JPG, 0001_NOISY_SRGB_010.PNG / "
        "0001_GT_SRGB_010.PNG, X_input / X_target or X_lq / X_gt, or sub-folders such as "
        "rain/ + norain/. Pass target_dir for two folders, or layout='side_by_side' with "
        "pair_order='input_left' or 'target_left' when each image holds both halves"
    )
