"""The papers' tables as data: each :class:`Table`'s rows, paper flagfiles and published numbers.

A table is a list of :class:`Row` records; a row is a paper flagfile in
``flags/`` (the paper's own settings) and the paper's PSNR/SSIM. A table's
``family`` picks the scale overlays ``erlrestore-reproduce`` stacks after
its rows' flagfiles (:mod:`erlrestore.reproduce`); what the paper claims
about its rows is in :mod:`erlrestore.claims`.
"""

import dataclasses

from erlrestore import claims as claims_module

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
class Table:
    """A paper table: rows, the model family (selects the scale overlay),
    which column of the paper the published numbers come from, the default
    test sets per scale, and flags every evaluation of the table gets. What
    the paper claims about its rows is in :mod:`erlrestore.claims`
    (:attr:`claims`)."""

    key: str
    title: str
    paper_column: str
    family: str
    rows: tuple
    eval_sets: dict  # scale -> {name: folder relative to data_root}
    eval_flags: tuple = ()
    reconstruct: bool = False  # rows are autoencoders: test inputs are the clean images

    @property
    def claims(self):
        """Every comparison the paper states between rows of this table (:mod:`erlrestore.claims`)."""
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


# Test sets at --scale=cpu, folders under the data root. The first is also the validation set of the
# learning curves (erlrestore.reproduce.scale_val_flags: watched only, never used to pick a checkpoint).
# De-raining: the light-rain samples (inputs 30.1 / 29.7 dB Y-PSNR).
_DERAIN_SETS = {"cpu": {"rain12": "rain12", "rain100l-10": "rain100l-10"}}
# The ERL-Net tables (Rain100H in the paper) are also scored on heavy rain: pairs 81-100 of Rain100H (13.35 dB).
_ERLNET_SETS = {"cpu": {**_DERAIN_SETS["cpu"], "rain100h-20": "rain100h-20"}}

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
    "erlnet_table3": Table(
        key="erlnet_table3",
        title="ERL-Net Table 3",
        paper_column="Rain100H (ERL-Net, ICCV 2019, Table 3)",
        family="erlnet",
        rows=_table3_rows(),
        eval_sets=_ERLNET_SETS,
    ),
    "rethinking_table2": Table(
        key="rethinking_table2",
        title="Rethinking Table II",
        paper_column="Rain800 de-raining (Rethinking generative methods, Table II)",
        family="gan",
        rows=(
            Row("pix2pix_unet8", "pix2pix (UNet-8)", "pix2pix_unet8.flags", 23.47, 0.7645),
            Row("pix2pix_unet8_lsgan", "pix2pix (UNet-8) + LSGAN", "pix2pix_unet8_lsgan.flags", 24.12, 0.8053),
            Row("unet5_lsgan", "UNet-5 + LSGAN", "unet5_lsgan.flags", 24.09, 0.8045),
            Row("unet5_lsgan_infoaccum15", "UNet-5 + LSGAN + InfoAccum-15", "unet5_lsgan_infoaccum15.flags",
                25.08, 0.8116),
            Row("unet5_lsgan_infoaccum15_subpix", "UNet-5 + LSGAN + InfoAccum-15 + SubPixUpsamp",
                "unet5_lsgan_infoaccum15_subpix.flags", 25.29, 0.8135),
        ),
        eval_sets=_DERAIN_SETS,
        # pix2pix's test script runs the generator in training mode (batch statistics,
        # dropout on) unless --eval is given; the paper builds on that code.
        eval_flags=("--norm_statistics=batch",),
    ),
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
    ),
}
