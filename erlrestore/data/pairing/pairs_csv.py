"""The pairs a CSV file lists (``--pairs``): for names that no layout of :mod:`erlrestore.data.pairing` pairs."""

import csv
import os

from erlrestore.data.image_files import IMAGE_EXTENSIONS, DataError, is_image_file
from erlrestore.data.pairing.records import Pair


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
