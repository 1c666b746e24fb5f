"""Restoring image files and folders: the ``erlrestore-restore`` tool's work.

:func:`restore_file` restores one file, :func:`restore_paths` files and
folders into an output folder (with a progress bar counting tiles),
:func:`restore_targets` plans which output each input gets, checked before
any model is loaded. Each input file is read from disk once
(:func:`erlrestore.data.image_files.read_file_bytes`): the image is decoded
from those bytes and the bit depth read from them; tiling parameters are
checked once per call (:func:`~erlrestore.inference.tiling.checked_tiling`).

Files (:func:`restore_file`): the output keeps the input's format, chosen by
the output's extension (the same as the input's in :func:`restore_paths`):
PNG and TIFF inputs with more than 8 bits per sample (16-bit, or
floating-point TIFF) are written with 16 bits, 8-bit ones with 8; JPEG is
written with quality 95 and BMP with 8 bits. The bit depth is read from the
file header (PNG ``IHDR``, TIFF ``BitsPerSample``:
:mod:`erlrestore.data.image_headers`). Writing is atomic
(:func:`erlrestore.data.image_files.write_image`). Which output files may be written
(never an input, existing ones only with ``overwrite``) is
:mod:`erlrestore.outputs`' policy, shared by every tool.
"""

import contextlib
import os
import sys

from erlrestore import outputs, pictures
from erlrestore.data import image_files, image_headers
from erlrestore.inference.tiling import checked_tiling, count_checked_tiles, restore_checked
from erlrestore.inference.work_scale import resolve_work_size
from erlrestore.progress import Progress


def source_bit_depth(path):
    """8 or 16: the bit depth :func:`restore_file` writes for an input file ``path``.

    16 for PNG with 16-bit samples and TIFF with more than 8 bits per sample
    (16-bit integers or floats), read from the header; 8 otherwise (JPEG,
    BMP, 8-bit or lower PNG/TIFF). A TIFF header that cannot be parsed
    (e.g. BigTIFF) gives 16, which loses nothing. (:func:`restore_file`
    itself takes it from the bytes it decodes, :func:`bit_depth_of`.)
    """
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext not in (".png", ".tif", ".tiff"):
        return 8
    with open(path, "rb") as handle:
        head = handle.read(1 << 16)
        if ext != ".png" and image_headers.tiff_bits_per_sample(head) is None:
            head += handle.read()  # the first image's directory may lie further into the file
    return bit_depth_of(head, path)


def bit_depth_of(data, path):
    """:func:`source_bit_depth` of the input file ``path`` whose bytes (all of them) are ``data``.

    ``path`` gives the format by its extension, as in :func:`source_bit_depth`.
    """
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext == ".png":
        return 16 if image_headers.png_bit_depth(data) == 16 else 8
    if ext in (".tif", ".tiff"):
        bits = image_headers.tiff_bits_per_sample(data)
        return 16 if bits is None or bits > 8 else 8
    return 8


def restore_file(restorer, input_path, output_path, tile=512, overlap=32, align=None, tile_batch=1,
                 self_ensemble=False, on_tiles=None, compare_path=None,
                 compare_max_width=pictures.DEFAULT_MAX_WIDTH, work_size=None):
    """Restores the image file ``input_path`` into ``output_path`` (atomically).

    The format follows ``output_path``'s extension; the bit depth follows the
    input (:func:`source_bit_depth`; 16-bit only where the output format
    holds it), JPEG is written with quality 95. ``self_ensemble``,
    ``on_tiles`` and ``work_size``: see :func:`restore_tiled`. ``compare_path``: also write
    the labelled strip input | restored there
    (:func:`erlrestore.pictures.comparison_strip`, at most
    ``compare_max_width`` pixels wide). The input is read from disk once.
    Returns ``output_path``.

    Raises:
      DataError when the input cannot be read (naming it) or when
      ``output_path`` is the input file itself; ValueError for bad tiling
      parameters.
    """
    tiling = checked_tiling(restorer, tile, overlap, align, tile_batch)
    return _restore_file(restorer, input_path, output_path, tiling, self_ensemble, on_tiles, compare_path,
                         compare_max_width, resolve_work_size(work_size, restorer))


def _restore_file(restorer, input_path, output_path, tiling, self_ensemble=False, on_tiles=None, compare_path=None,
                  compare_max_width=pictures.DEFAULT_MAX_WIDTH, work_size=None, on_image=None):
    """:func:`restore_file` with checked tiling (a :class:`~erlrestore.inference.tiling.CheckedTiling`) and a
    resolved ``work_size``; ``on_image`` is called with the decoded image before it is restored."""
    input_path, output_path = os.fspath(input_path), os.fspath(output_path)
    if outputs.same_file(input_path, output_path):
        raise image_files.DataError(f"output {output_path} is the input file {input_path}; inputs are never overwritten")
    data = image_files.read_file_bytes(input_path)  # the one read of the input
    image = image_files.decode_image(data, input_path)
    bit_depth = bit_depth_of(data, input_path)
    del data
    if on_image is not None:
        on_image(image)
    restored = restore_checked(restorer, image, tiling, self_ensemble, on_tiles, work_size)
    if os.path.splitext(output_path)[1].lower() not in (".png", ".tif", ".tiff"):
        bit_depth = 8
    image_files.write_image(output_path, restored, bit_depth=bit_depth, jpeg_quality=95)
    if compare_path is not None:
        pictures.write_strip(compare_path, pictures.comparison_strip(image, restored, max_width=compare_max_width))
    return output_path


def _collect_inputs(inputs):
    """``inputs`` (a path or paths: files and folders) -> [(input file, its folder or None)]."""
    if isinstance(inputs, (str, bytes, os.PathLike)):
        inputs = [inputs]
    files = []
    for item in inputs:
        item = os.fspath(item)
        if os.path.isdir(item):
            files.extend((path, item) for path in image_files.list_images(item))
        elif os.path.isfile(item):
            if not image_files.is_image_file(item):
                raise image_files.DataError(
                    f"input {item} is not an image file (extensions: {', '.join(image_files.IMAGE_EXTENSIONS)})"
                )
            files.append((item, None))
        else:
            raise image_files.DataError(f"input {item} does not exist")
    if not files:
        raise image_files.DataError("no input images given")
    return files


def restore_targets(inputs, output_dir, overwrite=False):
    """``[(input file, output file), ...]`` for :func:`restore_paths`: outputs keep the input's file name.

    The output policy is :mod:`erlrestore.outputs`' (inputs never
    overwritten, existing outputs only with ``overwrite``, no two inputs onto
    one output); an input file given twice is restored once.

    Raises:
      DataError (before anything is written) for the refusals of
      :func:`erlrestore.outputs.output_paths`, or when an input does not
      exist / is not an image.
    """
    sources = [path for path, _ in _collect_inputs(inputs)]
    pairs = {}
    for source, target in zip(sources, outputs.output_paths(sources, output_dir, overwrite=overwrite)):
        pairs.setdefault(target, (source, target))
    return list(pairs.values())


def restore_paths(
    restorer, inputs, output_dir, tile=512, overlap=32, align=None, tile_batch=1, overwrite=False, show_progress=True,
    self_ensemble=False, compare_dir=None, compare_max_width=pictures.DEFAULT_MAX_WIDTH, work_size=None,
):
    """Restores image files and folders into ``output_dir``, keeping the file names.

    Args:
      restorer: see :func:`restore_tiled`.
      inputs: an image file or a folder (its images, not recursive), or a
        list of them.
      output_dir: created when missing; never an input folder.
      tile, overlap, align, tile_batch: see :func:`restore_tiled`.
      overwrite: replace existing output files (inputs are never replaced).
      show_progress: draw a progress bar on stderr, counting tiles (with an
        ETA) rather than images, so one large photo moves it too; each
        file's tiles are counted when it is read and decoded (files not
        read yet are estimated from those read, see :class:`_TileBar`).
      self_ensemble: restore with the x8 self-ensemble (:mod:`erlrestore.inference.ensemble`).
      compare_dir: when given, also write a labelled strip input | restored
        per file there as ``<input stem>.png``
        (:func:`erlrestore.pictures.strip_paths`: not ``output_dir``, same
        output policy), at most ``compare_max_width`` pixels wide.
      work_size: the working scale, see :func:`restore_tiled` (``"auto"``:
        the restorer's ``trained_short_side``).

    Returns:
      ``(written, failures)``: output paths written, and ``(input path,
      message)`` for each file that could not be restored (unreadable, a
      model error); the others are still restored.

    Raises:
      DataError / ValueError before anything is written, for the refusals
      of :func:`restore_targets` and bad tiling parameters.
    """
    tiling = checked_tiling(restorer, tile, overlap, align, tile_batch)  # once, for every file
    work_size = resolve_work_size(work_size, restorer)
    pairs = restore_targets(inputs, output_dir, overwrite=overwrite)
    strips = {}
    if compare_dir is not None:
        sources = [source for source, _ in pairs]
        strips = dict(zip(sources, pictures.strip_paths(sources, compare_dir, overwrite=overwrite,
                                                        beside=[output_dir])))
    os.makedirs(output_dir, exist_ok=True)
    bar = _TileBar(len(pairs), tiling, self_ensemble, work_size) if show_progress else None
    order = {source: index for index, (source, _) in enumerate(pairs, 1)}

    def write(source, target):
        options = dict(compare_path=strips.get(source), compare_max_width=compare_max_width, work_size=work_size)
        if bar is None:
            return _restore_file(restorer, source, target, tiling, self_ensemble, **options)
        with bar.file(f"image {order[source]}/{len(pairs)}") as (on_image, on_tiles):
            return _restore_file(restorer, source, target, tiling, self_ensemble, on_tiles=on_tiles,
                                 on_image=on_image, **options)

    try:
        return outputs.collect_failures(pairs, write, errors=_model_errors(), show_progress=False, desc="restoring")
    finally:
        if bar is not None:
            bar.close()


class _TileBar:
    """:func:`restore_paths`' progress bar over the tiles of ``files`` files, counted as each file is decoded.

    A file's tiles are only known once it is read, and each file is read
    once, when its turn comes; until then each file not yet read counts
    as many tiles as the mean of those read so far (1 before the first), so
    the total (and the ETA) settles as the files are read and is exact at
    the end. A file that fails counts as done (:class:`~erlrestore.progress.Part`).
    """

    def __init__(self, files, tiling, self_ensemble, work_size):
        self.tiling, self.self_ensemble, self.work_size = tiling, self_ensemble, work_size
        self.left = files  # files whose tiles are not known yet
        self.known, self.known_files = 0, 0  # tiles of the files read so far, and how many
        self.bar = Progress(files, desc="restoring", unit="tiles")

    def _estimate(self):
        return max(1, round(self.known / self.known_files)) if self.known_files else 1

    @contextlib.contextmanager
    def file(self, note):
        """``(on_image, on_tiles)`` for restoring one file: the decoded image's tile count, then the tiles done."""
        part = self.bar.part(self._estimate(), note=note)
        counted = False

        def on_image(image):
            nonlocal counted
            tiles = count_checked_tiles(image.shape[0], image.shape[1], self.tiling, self.self_ensemble,
                                        self.work_size)
            before = self._estimate()
            self.left -= 1
            self.known += tiles
            self.known_files += 1
            counted = True
            self.bar.total += self.left * (self._estimate() - before)  # the files still to read
            part.resize(tiles)

        try:
            with part:
                yield on_image, part
        finally:
            if not counted:  # unreadable: its tiles stay unknown, and it no longer waits
                self.left -= 1

    def close(self):
        self.bar.close()


def _model_errors():
    """What restoring one file may raise and :func:`restore_paths` reports per file instead of stopping.

    ValueError and OSError (bad files), RuntimeError (LiteRT's and OpenVINO's
    model errors) and, once TensorFlow is imported, its ``OpError``; a run
    that never imported TensorFlow cannot raise one, so it is not imported
    for this.
    """
    tf = sys.modules.get("tensorflow")
    errors = (ValueError, OSError, RuntimeError)
    return errors + (tf.errors.OpError,) if tf is not None and hasattr(tf, "errors") else errors
