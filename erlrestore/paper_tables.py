"""The papers' tables as data: each :class:`Table`'s rows, paper flagfiles and published numbers.

A table is a list of :class:`Row` records; a row is a paper flagfile in
``flags/`` (the paper's own settings) and the paper's PSNR/SSIM. A table's
``family`` picks the scale overlays ``erlrestore-reproduce`` stacks after
its rows' flagfiles (:mod:`erlrestore.reproduce`); what the paper claims
about its rows is in :mod:`erlrestore.claims`.

What a table trains and is scored on at ``--scale=cpu`` is data too: a
:class:`TrainingData` (a folder of the shared samples and the flags that
degrade it) and test sets that are folders of the samples or
:class:`SyntheticSet` (a degradation applied to a folder of clean photos
with a fixed seed). Rethinking Table II is one table per column (the same
rows, each column's numbers) and Table I / Fig. 3 one per task (UNet-1 to
UNet-6); Fig. 6 (InfoAccum depth) and Fig. 13 (InfoAccum position) are
tables too, whose rows are Table II's UNet-5 + LSGAN rows and variants of
them. :data:`GROUPS` names each family of tables for ``--table``.
"""

import dataclasses
import os

FAMILIES = ("erlnet", "gan", "recon")


@dataclasses.dataclass(frozen=True)
class Row:
    """One row of a table: an id (its run folder), a label as the paper
    prints it, its paper flagfile (relative to ``flags/``) and the paper's
    PSNR/SSIM (None where the paper has no number)."""

    id: str
    label: str
    flagfile: str
    paper_psnr: float = None
    paper_ssim: float = None


@dataclasses.dataclass(frozen=True)
class SyntheticSet:
    """A test set ``erlrestore-reproduce`` makes itself, once, as ``erlrestore-synth`` would.

    ``degradation`` (a name of :data:`erlrestore.data.synthetic.DEGRADATIONS`)
    with ``params`` (in ``--degradation_params`` syntax, ``name=value;...``)
    is applied to every photo of ``clean`` (a folder under the data root),
    photo ``i`` with the stateless seed ``(seed, i * 10000)``
    (:func:`erlrestore.data.synthetic.synthesize_folder`). The pairs go to
    ``<output_dir>/data/<name>-<digest>/{input,target}``
    (:func:`erlrestore.reproduce.synthetic_set`); each record says how the
    set was made.
    """

    clean: str
    degradation: str
    params: str = ""
    seed: int = 0

    def describe(self):
        """``dense_rain (density_level=light), seed 1``: the synthesis in words."""
        params = f" ({self.params})" if self.params else ""
        return f"{self.degradation}{params}, seed {self.seed}"


@dataclasses.dataclass(frozen=True)
class TrainingData:
    """What a table trains on at ``--scale=cpu`` unless ``--train_flags`` says otherwise.

    ``folder`` (relative to the data root) is named by the training flag
    ``--<flag>`` (``synthetic_clean_dir``: clean photos degraded on the fly
    by the ``flags`` after it; ``train_input_dir``: real pairs), followed by
    ``flags`` (:func:`erlrestore.reproduce.scale_data_flags`). Run folders
    are keyed by these flags (:func:`erlrestore.records.run_key`), so
    changing a table's data trains new runs.
    """

    folder: str
    flag: str = "synthetic_clean_dir"
    flags: tuple = ()

    def data_flags(self, data_root):
        """The training flags with the folder under ``data_root``."""
        return [f"--{self.flag}={os.path.join(data_root, self.folder)}", *self.flags]


# Training data at --scale=cpu (folders of the shared samples, ../shared/data/README.md).
# De-raining: procedural streaks whose level (light, medium or heavy, erlrestore/data/degradations/dense_rain.py) is
# drawn per image, so the training inputs span the test sets' range, light rain12 / rain100l-10 (30.1 / 29.7 dB)
# to heavy rain100h-20 (13.35 dB): about 13-32 dB, 22.3 dB on average, on derain-train photos.
CPU_DERAIN_DATA = TrainingData("derain-train/clean", "synthetic_clean_dir",
                               ("--degradation=dense_rain", "--degradation_params=density_level=mixed"))
# Reconstruction trains clean -> clean (the degraded input is never used); its flags stay as they were, so its
# runs keep their identity (run folders, records).
CPU_RECON_DATA = TrainingData("derain-train/clean", "synthetic_clean_dir", ("--degradation=rain",))
# De-noising: blind noise, white Gaussian (sigma 0-55) on half the images and processed camera noise (shot and
# read noise in linear light, correlation, gamma, JPEG) on the rest, erlrestore/data/degradations/noise.py: the
# noise the shipped rethinking-denoise model trained on (flags/pretrained/rethinking_denoise.flags).
CPU_DENOISE_DATA = TrainingData("derain-train/clean", "synthetic_clean_dir", ("--degradation=camera_noise",))
# De-hazing: the real RESIDE outdoor pairs, hazy/<id>_<A>_<beta>.jpg <-> gt/<id>.jpg, paired as RESIDE by the
# training's own pairing (erlrestore.data.pairing), straight from the shared folder.
CPU_DEHAZE_DATA = TrainingData("dehaze-train", "train_input_dir")
# RainCityScapes-style rain and fog over depth (Hu et al., CVPR 2019; dense_rain.py, rain_cityscapes:
# O = B (1 - R_d - V) + R_d + A V), at its default, medium, rain level.
CPU_RAIN_CITYSCAPES_DATA = TrainingData("derain-train/clean", "synthetic_clean_dir",
                                        ("--degradation=rain_cityscapes", "--degradation_params=density_level=medium"))
# Outdoor-Rain's heavy rain model (Li, Cheong and Tan, CVPR 2019): O = T (B + sum_i S_i) + (1 - T) A. Both
# heavy_rain (rain.py) and rain_haze (dense_rain.py) implement it; rain_haze draws its streak layers at the
# image's scale (long, wide streaks in several directions), as in Outdoor-Rain's photos, heavy_rain thin
# fixed-size ones.
CPU_OUTDOOR_RAIN_DATA = TrainingData("derain-train/clean", "synthetic_clean_dir",
                                     ("--degradation=rain_haze", "--degradation_params=density_level=heavy"))


@dataclasses.dataclass(frozen=True)
class Table:
    """A paper table: rows, the model family (selects the scale overlay),
    which column of the paper the published numbers come from, the default
    test sets per scale (folders under the data root, or
    :class:`SyntheticSet`), flags every evaluation of the table gets, and
    its training data at ``--scale=cpu`` (:class:`TrainingData`). What
    the paper claims about its rows is in :mod:`erlrestore.claims`
    (:attr:`claims`)."""

    key: str
    title: str
    paper_column: str
    family: str
    rows: tuple
    eval_sets: dict  # scale -> {name: folder relative to data_root, or a SyntheticSet}
    eval_flags: tuple = ()
    reconstruct: bool = False  # rows are autoencoders: test inputs are the clean images
    cpu_data: TrainingData = CPU_DERAIN_DATA  # the training data at --scale=cpu
    # Training flags after the scale overlay, at every scale: what sets this table apart from another table with
    # the same rows (e.g. the stage budget of ERL-Net Table 3's two protocols). Part of each run's identity.
    train_flags: tuple = ()
    # Confounds of the comparisons between this table's rows that the protocol does not remove, in words: the
    # page prints them under the table's title, beside its rows.
    caveats: tuple = ()

    @property
    def claims(self):
        """Every comparison the paper states between rows of this table (:mod:`erlrestore.claims`)."""
        from erlrestore import claims as claims_module  # claims.py reads this module's numbers

        return claims_module.for_table(self.key)

    @property
    def comparisons(self):
        """``(better, worse)`` of the table's claims, in order."""
        return tuple((c.better, c.worse) for c in self.claims)

    def row(self, row_id):
        """The row of id ``row_id``; KeyError when the table has none."""
        for row in self.rows:
            if row.id == row_id:
                return row
        raise KeyError(row_id)


# Test sets at --scale=cpu, folders under the data root (or SyntheticSet). The first is also the validation set of
# the learning curves (erlrestore.reproduce.scale_val_flags: watched only, never used to pick a checkpoint).
# De-raining: the light-rain samples (inputs 30.1 / 29.7 dB Y-PSNR).
_DERAIN_SETS = {"cpu": {"rain12": "rain12", "rain100l-10": "rain100l-10"}}
# The ERL-Net tables (Rain100H in the paper) are also scored on heavy rain: pairs 81-100 of Rain100H (13.35 dB).
_ERLNET_SETS = {"cpu": {**_DERAIN_SETS["cpu"], "rain100h-20": "rain100h-20"}}
# De-noising: PolyU's real camera noise, X_real.JPG <-> X_mean.JPG in one folder (paired by those role words;
# input 37.04 dB), the real-noise set the shipped rethinking-denoise model is scored on.
_DENOISE_SETS = {"cpu": {"polyu-20": "polyu-20"}}
# De-hazing: RESIDE SOTS-indoor. Hazy images are 620x460, clean ones 640x480: the pairing recognises RESIDE's
# names and crops the clean image's 10-pixel border (RESIDE's convention), as when the shipped rethinking-dehaze
# model was scored on the same folder.
_DEHAZE_SETS = {"cpu": {"sots-indoor-10": "sots-indoor-10"}}
# Synthetic test sets over the 24 Kodak photos (never trained on), each with its own fixed base seed so that no
# two sets share their random draws. Rain1200 holds rain of three densities (DID-MDN's light / medium / heavy):
# one set per level of dense_rain, whose levels follow those classes.
_RAIN1200_SETS = {"cpu": {
    f"kodak24-rain-{level}": SyntheticSet("kodak24", "dense_rain", f"density_level={level}", seed)
    for seed, level in enumerate(("light", "medium", "heavy"), start=1)}}
_RAIN_CITYSCAPES_SETS = {"cpu": {
    "kodak24-raincityscapes": SyntheticSet("kodak24", "rain_cityscapes", "density_level=medium", 4)}}
_OUTDOOR_RAIN_SETS = {"cpu": {
    "kodak24-outdoorrain": SyntheticSet("kodak24", "rain_haze", "density_level=heavy", 5)}}

_STRATEGIES = ("MA_A", "MA_B", "MA_C", "MA_D", "DT")
# ERL-Net Table 3, Rain100H column (PSNR, SSIM), by (strategy, entanglement).
_TABLE3_RAIN100H = {
    ("MA_A", "CLGD"): (31.6521, 0.8687), ("MA_B", "CLGD"): (32.0452, 0.9087),
    ("MA_C", "CLGD"): (32.8027, 0.9221), ("MA_D", "CLGD"): (33.0145, 0.9294),
    ("DT", "CLGD"): (31.6214, 0.8634),
    ("MA_A", "MLGD"): (31.6804, 0.8692), ("MA_B", "MLGD"): (32.6870, 0.9247),
    ("MA_C", "MLGD"): (33.2041, 0.9364), ("MA_D", "MLGD"): (34.5724, 0.9387),
    ("DT", "MLGD"): (31.6287, 0.8673),
}


def _table3_rows():
    """ERL-Net Table 3: every strategy under each entanglement, then MEMD (Table 2's) as the baseline."""
    rows = []
    for entanglement in ("CLGD", "MLGD"):
        for strategy in _STRATEGIES:
            psnr, ssim = _TABLE3_RAIN100H[(strategy, entanglement)]
            rows.append(Row(f"erlnet_{strategy.lower()}_{entanglement.lower()}", f"{strategy} / {entanglement}",
                            f"erlnet_{strategy.lower()}_{entanglement.lower()}.flags", psnr, ssim))
    rows.append(Row("memd", "MEMD (Table 2)", "memd.flags", 31.6310, 0.8668))
    return tuple(rows)


_ERLNET_TABLE3 = Table(
    key="erlnet_table3",
    title="ERL-Net Table 3",
    paper_column="Rain100H (ERL-Net, ICCV 2019, Table 3)",
    family="erlnet",
    rows=_table3_rows(),
    eval_sets=_ERLNET_SETS,
)


# Rethinking Table II: the rows (id, label as the paper prints it, paper flagfile), the same in every column.
_TABLE2_ROWS = (
    ("pix2pix_unet8", "pix2pix (UNet-8)", "pix2pix_unet8.flags"),
    ("pix2pix_unet8_lsgan", "pix2pix (UNet-8) + LSGAN", "pix2pix_unet8_lsgan.flags"),
    ("unet5_lsgan", "UNet-5 + LSGAN", "unet5_lsgan.flags"),
    ("unet5_lsgan_infoaccum15", "UNet-5 + LSGAN + InfoAccum-15", "unet5_lsgan_infoaccum15.flags"),
    ("unet5_lsgan_infoaccum15_subpix", "UNet-5 + LSGAN + InfoAccum-15 + SubPixUpsamp",
     "unet5_lsgan_infoaccum15_subpix.flags"),
)
# Its six columns in the paper's order: our table's key -> (the column as the paper heads it, the task, (PSNR,
# SSIM) per row of _TABLE2_ROWS, None where the paper prints "-").
TABLE2_COLUMNS = {
    "rethinking_table2_sidd": ("SSID-Small-sRGB", "de-noising", (
        (23.38, 0.6664), (24.28, 0.6946), (24.27, 0.6925), (25.55, 0.7275), (26.62, 0.7379))),
    "rethinking_table2_reside": ("RESIDE", "de-hazing", (
        (26.59, 0.9233), (28.86, 0.9492), (28.71, 0.9482), (30.94, 0.9606), (30.99, 0.9620))),
    "rethinking_table2": ("Rain800", "de-raining", (
        (23.47, 0.7645), (24.12, 0.8053), (24.09, 0.8045), (25.08, 0.8116), (25.29, 0.8135))),
    "rethinking_table2_rain1200": ("Rain1200", "de-raining", (
        (26.34, 0.7759), (29.53, 0.8719), (29.16, 0.8745), (30.77, 0.9013), (31.52, 0.9053))),
    "rethinking_table2_raincityscapes": ("RainCityScapes", "de-raining + de-hazing", (
        (28.61, 0.9345), (30.92, 0.9547), (30.88, 0.9653), None, (31.29, 0.9645))),
    "rethinking_table2_outdoorrain": ("OutdoorRain-8-2", "de-raining + de-hazing", (
        (25.45, 0.7934), None, (26.74, 0.8564), None, (27.5, 0.8799))),
}


def _table2_rows(key):
    """The rows of Table II with the numbers of one column (None for a "-")."""
    numbers = TABLE2_COLUMNS[key][2]
    return tuple(Row(row_id, label, flagfile, *(pair or (None, None)))
                 for (row_id, label, flagfile), pair in zip(_TABLE2_ROWS, numbers))


# The cpu overlay's 96 px crops against UNet-8's multiple of 256 (flags/reproduce/cpu_gan.flags).
UNET8_CANVAS_CAVEAT = (
    "UNet-8 rows pad each 96 px training crop to 256 px inside the network (PadToMultiple, edge padding: 86% of "
    "every training input and of its batch-norm statistics is smeared border), UNet-5 rows train on the 96 px "
    "crop as it is, so the pix2pix (UNet-8) vs UNet-5 comparisons at --scale=cpu mix the depth with the canvas; "
    "at --scale=paper both see 256 px crops.")


def _table2(key, eval_sets, cpu_data):
    """One column of Rethinking Table II as a table: the five rows, the column's numbers, its data."""
    column, task, _ = TABLE2_COLUMNS[key]
    return Table(
        key=key,
        # The Rain800 column was the only one at first; its title stays as its records and page have it.
        title="Rethinking Table II" if key == "rethinking_table2" else f"Rethinking Table II, {column} column",
        paper_column=f"{column} {task} (Rethinking generative methods, Table II)",
        family="gan",
        rows=_table2_rows(key),
        eval_sets=eval_sets,
        # pix2pix's test script runs the generator in training mode (batch statistics,
        # dropout on) unless --eval is given; the paper builds on that code.
        eval_flags=("--norm_statistics=batch",),
        cpu_data=cpu_data,
        caveats=(UNET8_CANVAS_CAVEAT,),
    )


# Rethinking Table I / Fig. 3: UNet-N for these N, each row the paper's UNet-5 + LSGAN flagfile with --levels=N
# (flags/table1/unet<N>.flags). The paper sweeps N = 1..8 and prints no number per N (Fig. 3 is a plot); the
# claims need N up to one past the largest saturation point (5, de-hazing). At the cpu overlay's 96 px crops
# UNet-6 pads its input to 128 px (a 2x2 bottleneck), as UNet-8 pads it to 256.
TABLE1_LEVELS = (1, 2, 3, 4, 5, 6)


def _table1(task, words, eval_sets, cpu_data):
    """Table I / Fig. 3 for one task: UNet-N + LSGAN for every N of :data:`TABLE1_LEVELS`."""
    return Table(
        key=f"rethinking_table1_{task}",
        title=f"Rethinking Table I / Fig. 3, {words}",
        paper_column=f"{words} (Rethinking generative methods, Table I / Fig. 3: no number per N printed)",
        family="gan",
        rows=tuple(Row(f"unet{n}", f"UNet-{n} + LSGAN", f"table1/unet{n}.flags") for n in TABLE1_LEVELS),
        eval_sets=eval_sets,
        eval_flags=("--norm_statistics=batch",),
        cpu_data=cpu_data,
    )


# Rethinking Fig. 6 / App. G: UNet-5 + LSGAN with an InfoAccum module of L layers before the generator, de-raining
# on Rain800. The paper plots its L values without listing them; these are ours (tools/sweep.py's default list).
FIG6_LAYERS = (0, 1, 3, 5, 10, 15, 20)
# Rethinking Fig. 13 / App. H.A: InfoAccum-15 at these positions of the generator (none: the plain UNet-5 + LSGAN).
# Position k sits before encoder level k, so 0 (on the image, before the generator) is the paper's "1st" and k its
# (k+1)-th; (0, 1) is its "1st - 2nd". UNet-5 has positions 0..4.
FIG13_POSITIONS = ((), (0,), (1,), (2,), (3,), (4,), (0, 1))
# Table II's rows that Fig. 6 and Fig. 13 share: the same id and flagfile give the same run folder
# (erlrestore.reproduce.run_dir_for), so each trains once for every table that lists it. --info_accum_layers
# defaults to 0 and --info_accum_positions to 0 (erlrestore/training/gan_family.py), so unet5_lsgan is L = 0 and
# unet5_lsgan_infoaccum15 is both L = 15 and InfoAccum-15 at the "1st" position.
_TABLE2_ROW = {row_id: Row(row_id, label, flagfile) for row_id, label, flagfile in _TABLE2_ROWS}
_UNET5_LSGAN = _TABLE2_ROW["unet5_lsgan"]
_UNET5_LSGAN_INFOACCUM15 = _TABLE2_ROW["unet5_lsgan_infoaccum15"]


def ordinal(position):
    """The paper's name of our InfoAccum position ``k``: "1st" for 0 (before the generator), "2nd" for 1..."""
    n = position + 1
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def position_words(positions):
    """The paper's name of a tuple of our positions: "none", "1st", "1st - 2nd" (the first and the last, as the
    paper's "1st - 8th" names all eight)."""
    if not positions:
        return "none"
    if len(positions) == 1:
        return ordinal(positions[0])
    return f"{ordinal(positions[0])} - {ordinal(positions[-1])}"


def _fig6_row(layers):
    """The Fig. 6 row of InfoAccum depth ``layers`` (Table II's own rows at 0 and 15)."""
    if layers == 0:
        return _UNET5_LSGAN
    if layers == 15:
        return _UNET5_LSGAN_INFOACCUM15
    return Row(f"unet5_lsgan_infoaccum{layers}", f"UNet-5 + LSGAN + InfoAccum-{layers}",
               f"fig6/unet5_lsgan_infoaccum{layers}.flags")


def _fig13_row(positions):
    """The Fig. 13 row of InfoAccum-15 at ``positions`` (Table II's own rows for none and the "1st")."""
    if not positions:
        return dataclasses.replace(_UNET5_LSGAN, label="UNet-5 + LSGAN (no InfoAccum)")
    if positions == (0,):
        return dataclasses.replace(_UNET5_LSGAN_INFOACCUM15, label="UNet-5 + LSGAN + InfoAccum-15 at 1st (before "
                                   "the generator)")
    where = " and ".join(f"encoder level {k}" if k else "the generator" for k in positions)
    return Row(f"unet5_lsgan_infoaccum15_at{'+'.join(str(k) for k in positions)}",
               f"UNet-5 + LSGAN + InfoAccum-15 at {position_words(positions)} (before {where})",
               f"fig13/unet5_lsgan_infoaccum15_at{'+'.join(str(k) for k in positions)}.flags")


# The paper's Fig. 13 backbone against ours, under that table's rows.
FIG13_BACKBONE_CAVEAT = (
    "The paper inserts InfoAccum-15 before the encoder layers of pix2pix's UNet-8 (positions 1st to 8th, and 1st - "
    "8th) and trains the pix2pix model; we use the Fig. 6 / Table II backbone, UNet-5 + LSGAN, to stay within the "
    "cpu budget, so our positions are 1st to 5th and 1st - 2nd, and a deep position of ours sits nearer the "
    "bottleneck than the same ordinal of the paper's (our 5th, before encoder level 4, reads the 16x down-sampled "
    "features).")


def _derain_figure(key, title, words, rows, caveats=()):
    """A Rethinking figure measured as a table of rows: de-raining, trained and scored as Table II's Rain800
    column (that table with other rows: the same data, test sets and evaluation flags), so rows it shares with
    Table II are the same runs."""
    return dataclasses.replace(
        _table2("rethinking_table2", _DERAIN_SETS, CPU_DERAIN_DATA), key=key, title=title,
        paper_column=f"Rain800 de-raining (Rethinking generative methods, {words}: a plot, no number printed)",
        rows=rows, caveats=caveats)


TABLES = {
    "erlnet_table2": Table(
        key="erlnet_table2",
        title="ERL-Net Table 2",
        paper_column="Rain100H (ERL-Net, ICCV 2019, Table 2)",
        family="erlnet",
        rows=(
            Row("memd_minus_minus", "MEMD-- (no skip, no fusion)", "memd_minus_minus.flags", 24.0743, 0.7315),
            Row("memd_minus", "MEMD- (skip, no fusion)", "memd_minus.flags", 29.3782, 0.8327),
            Row("memd", "MEMD (skip + fusion)", "memd.flags", 31.6310, 0.8668),
            Row("memd_global_residual", "MEMD + global input residual (ours, not in the paper)",
                "memd_global_residual.flags"),
        ),
        eval_sets=_ERLNET_SETS,
    ),
    "erlnet_table3": _ERLNET_TABLE3,
    # The same rows under the paper's own budget: every stage of a strategy trains the full step count of the
    # scale (--stage_budget=each; at --scale=cpu 2400 steps per stage, so MA_D trains 7200 steps and DT 4800),
    # beside erlnet_table3's equal total (split). MEMD has one stage, so its runs train the same way under both;
    # they are trained again here so that every row of this table shares one protocol.
    "erlnet_table3_each": dataclasses.replace(
        _ERLNET_TABLE3, key="erlnet_table3_each",
        title="ERL-Net Table 3, the paper's budget (each stage the full step count)",
        train_flags=("--stage_budget=each",)),
    "rethinking_table1_denoise": _table1("denoise", "de-noising", _DENOISE_SETS, CPU_DENOISE_DATA),
    "rethinking_table1_derain": _table1("derain", "de-raining", _DERAIN_SETS, CPU_DERAIN_DATA),
    "rethinking_table1_dehaze": _table1("dehaze", "de-hazing", _DEHAZE_SETS, CPU_DEHAZE_DATA),
    # The Rain800 column: rain of mixed density over the derain-train photos, scored on light real rain.
    "rethinking_table2": _table2("rethinking_table2", _DERAIN_SETS, CPU_DERAIN_DATA),
    # SIDD: blind camera noise over the derain-train photos, scored on PolyU's real noise.
    "rethinking_table2_sidd": _table2("rethinking_table2_sidd", _DENOISE_SETS, CPU_DENOISE_DATA),
    # RESIDE: real outdoor RESIDE pairs, scored on SOTS-indoor.
    "rethinking_table2_reside": _table2("rethinking_table2_reside", _DEHAZE_SETS, CPU_DEHAZE_DATA),
    # Rain1200: the Rain800 column's training (same rows and data, so the same runs: they train once) scored on
    # light, medium and heavy synthetic rain over Kodak24.
    "rethinking_table2_rain1200": _table2("rethinking_table2_rain1200", _RAIN1200_SETS, CPU_DERAIN_DATA),
    # RainCityScapes: our synthetic analogue of its composition (rain and fog over depth), trained and scored.
    "rethinking_table2_raincityscapes": _table2("rethinking_table2_raincityscapes", _RAIN_CITYSCAPES_SETS,
                                                CPU_RAIN_CITYSCAPES_DATA),
    # OutdoorRain: our synthetic analogue of the heavy rain model (streak layers under a veil).
    "rethinking_table2_outdoorrain": _table2("rethinking_table2_outdoorrain", _OUTDOOR_RAIN_SETS,
                                             CPU_OUTDOOR_RAIN_DATA),
    "rethinking_table3": Table(
        key="rethinking_table3",
        title="Rethinking Table III",
        paper_column="reconstruction (Rethinking generative methods, Table III)",
        family="recon",
        rows=(
            Row("recon_endec5", "En/Decoder", "recon_endec5.flags", 24.06, 0.7194),
            Row("recon_pix2pix_unet8", "pix2pix (UNet-8)", "recon_pix2pix_unet8.flags", 34.20, 0.9802),
            Row("recon_unet5", "UNet-5", "recon_unet5.flags", 34.28, 0.9811),
            Row("recon_unet5_infoaccum15", "UNet-5 + InfoAccum-15", "recon_unet5_infoaccum15.flags", 42.58, 0.9967),
            Row("recon_unet5_infoaccum15_subpix", "UNet-5 + InfoAccum-15 + SubPixUpsamp",
                "recon_unet5_infoaccum15_subpix.flags", 49.41, 0.9987),
        ),
        eval_sets={"cpu": {"kodak24": "kodak24"}},
        eval_flags=("--norm_statistics=batch",),
        reconstruct=True,
        cpu_data=CPU_RECON_DATA,
        caveats=(UNET8_CANVAS_CAVEAT,),
    ),
    # Fig. 6 and Fig. 13 (App. G and H.A): de-raining as the Rain800 column, their shared rows the same runs.
    "rethinking_fig6": _derain_figure(
        "rethinking_fig6", "Rethinking Fig. 6, InfoAccum depth", "Sec. VI.2, Fig. 6 and App. G",
        tuple(_fig6_row(layers) for layers in FIG6_LAYERS)),
    "rethinking_fig13": _derain_figure(
        "rethinking_fig13", "Rethinking Fig. 13, InfoAccum position", "App. H.A, Fig. 13",
        tuple(_fig13_row(positions) for positions in FIG13_POSITIONS), caveats=(FIG13_BACKBONE_CAVEAT,)),
}

TABLE1_KEYS = ("rethinking_table1_denoise", "rethinking_table1_derain", "rethinking_table1_dehaze")

# Names --table accepts for several tables at once (besides "all").
GROUPS = {
    "erlnet_table3_both": ("erlnet_table3", "erlnet_table3_each"),
    "rethinking_table1_all": TABLE1_KEYS,
    "rethinking_table2_all": tuple(TABLE2_COLUMNS),
    "rethinking_figs_6_13": ("rethinking_fig6", "rethinking_fig13"),
}
