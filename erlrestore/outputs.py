"""Where restored images go, when an existing file may be replaced, and collecting per-file failures.

One policy for every tool that writes restored images (``erlrestore-restore``,
``erlrestore-evaluate --output_dir``, the serving client):

* Each input file gives one output file in the output folder:
  ``erlrestore-restore`` keeps the input's file name (and so its format);
  ``erlrestore-evaluate`` and the serving client write ``<input stem>.png``.
* Inputs are never overwritten. The output folder may not be a folder that
  holds an input image (nor, for evaluation, a clean reference image), also
  when reached through a symbolic link, and no output may be an input file
  (also through a hard link).
* Two different inputs that would give the same output file (``a.png`` and
  ``a.jpg`` written as ``a.png``) are refused rather than one silently
  replacing the other; the same file given twice is restored once.
* Existing output files are refused unless ``overwrite`` (the tools'
  ``--overwrite``) is given; the error names the first few of them.
* All of this is checked before anything is written (and before the model is
  loaded), so a refused run leaves no partial results.
* A file that fails later (unreadable, a model error, refused by a server)
  does not stop the others: :func:`collect_failures` returns the written
  outputs and one ``(input, reason)`` per failure, and the tools list the
  failures and exit 1.

This module imports no TensorFlow, so light clients (the REST serving client)
can use it.
"""

import os

from erlrestore.data import image_files
from erlrestore.progress import progress

# How many existing outputs a refusal names.
SHOWN_CLASHES = 3


def _real(path):
    return os.path.realpath(os.path.abspath(path))


def _file_id(path):
    """(device, inode) of an existing file, or None: the same file under any name, hard links included."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def same_file(a, b):
    """Whether paths ``a`` and ``b`` name one file (through symbolic or hard links)."""
    if _real(a) == _real(b):
        return True
    file_id = _file_id(a)
    return file_id is not None and file_id == _file_id(b)


def output_paths(inputs, output_dir, extension=None, overwrite=False, references=()):
    """The output file of each input file, after checking the policy of the module docstring.

    Args:
      inputs: input image files (paths), in order.
      output_dir: the output folder (it need not exist yet).
      extension: None keeps each input's file name; a suffix such as
        ``".png"`` writes ``<input stem><extension>``.
      overwrite: allow replacing existing output files (inputs never).
      references: further files that must never be written over and whose
        folders may not be the output folder, e.g. clean reference images.

    Returns:
      One output path per input, in order (the same path for a file given
      twice).

    Raises:
      DataError, before anything is written, for every refusal of the module
      docstring; the message names the files involved.
    """
    output_dir = os.fspath(output_dir)
    inputs = [os.fspath(path) for path in inputs]
    protected = [("input", path) for path in inputs] + [("clean", os.fspath(path)) for path in references]
    real_out = _real(output_dir)
    for role, path in protected:
        # The folder the path names and the folder of the file it leads to (through links).
        if real_out in (_real(os.path.dirname(os.path.abspath(path))), os.path.dirname(_real(path))):
            raise image_files.DataError(
                f"output folder {output_dir} holds the {role} image {path}; write restored images to a "
                "different folder (inputs are never overwritten)"
            )
    protected_names = {_real(path): path for _, path in protected}
    protected_ids = {}
    for _, path in protected:
        file_id = _file_id(path)
        if file_id is not None:
            protected_ids.setdefault(file_id, path)

    outputs, owner = [], {}
    for path in inputs:
        name = os.path.basename(path)
        if extension is not None:
            name = os.path.splitext(name)[0] + extension
        target = os.path.join(output_dir, name)
        first = owner.setdefault(target, path)
        if not same_file(first, path):
            raise image_files.DataError(
                f"inputs {first} and {path} share the name {os.path.splitext(name)[0]!r}: both would be "
                f"restored to {target}; rename one of them"
            )
        source = protected_names.get(_real(target)) or protected_ids.get(_file_id(target))
        if source is not None:
            raise image_files.DataError(
                f"output {target} would overwrite the input {source}; choose another output folder "
                "(inputs are never overwritten)"
            )
        outputs.append(target)
    if not overwrite:
        refuse_existing(dict.fromkeys(outputs))
    return outputs


def refuse_existing(paths):
    """DataError naming the first :data:`SHOWN_CLASHES` of ``paths`` that exist (anything, even a broken link)."""
    existing = [path for path in paths if os.path.lexists(path)]
    if not existing:
        return
    shown = ", ".join(existing[:SHOWN_CLASHES])
    more = f" and {len(existing) - SHOWN_CLASHES} more" if len(existing) > SHOWN_CLASHES else ""
    raise image_files.DataError(
        f"{len(existing)} output file(s) already exist: {shown}{more}; replace them with --overwrite "
        "(overwrite=True) or choose another output folder"
    )


def collect_failures(pairs, write, errors, shown_as_is=(image_files.DataError,), show_progress=True, desc="restoring"):
    """Runs ``write(input, output)`` for each ``(input, output)`` pair; one failing file does not stop the others.

    Args:
      pairs: ``(input path, output path)`` pairs, e.g. from :func:`output_paths`.
      write: does the work for one pair and returns what was written (a path).
      errors: the exception types that count as one file's failure; any
        other exception propagates (a bug, or an interrupt).
      shown_as_is: failures of these types are reported by their message
        alone (it names the file already); others as ``<type>: <message>``.
      show_progress: draw a progress bar on stderr.
      desc: the progress bar's label.

    Returns:
      ``(written, failures)``: what ``write`` returned for each success, in
      order, and ``(input path, reason)`` for each failure.
    """
    pairs = list(pairs)
    written, failures = [], []
    items = progress(pairs, total=len(pairs), desc=desc) if show_progress else pairs
    for source, target in items:
        try:
            written.append(write(source, target))
        except errors as error:
            message = str(error) if isinstance(error, shown_as_is) else f"{type(error).__name__}: {error}"
            failures.append((source, message))
    return written, failures
