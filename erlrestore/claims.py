"""Every comparison the two papers state, as data, including the ones our runs go against.

Each :class:`Claim` names two rows of one of our tables
(:data:`erlrestore.paper_tables.TABLES`) and what the paper says about them
(``better``: A beats B; ``no_worse``: no drop from B to A; ``similar``: A
and B about equal; ``majority``: A restores more than half of the test
images better than B), with where the paper says it: a table's numbers, a
sentence of the text, or both. :mod:`erlrestore.verdicts` judges them from
the records, and ``docs/RESULTS.md`` lists every one with its verdict.

Claims that compare things no table of ours trains (other papers' methods,
other data sets, figures sweeping a setting we do not sweep, region
metrics) are listed too, with ``table=""`` and the reason they are not run,
so the page shows what is left untested. Three of them are measured without a
table (``figure``, :mod:`erlrestore.paper_figures`): ERL-Net Fig. 3's hard
and easy images, ERL-Net Table 4's region metrics and Rethinking Fig. 7's
loss curves; the page shows their outcome once their records exist.

A claim that two sources support (a pair the table's numbers order and the
text also states) is listed once, with both sources.
"""

import dataclasses

from erlrestore import paper_tables, verdicts

ERLNET = "ERL-Net (ICCV 2019)"
RETHINKING = "Rethinking generative methods for image restoration"


@dataclasses.dataclass(frozen=True)
class Claim:
    """``better`` vs ``worse`` on ``metric`` as the paper states it (``kind`` from :data:`verdicts.KINDS`).

    ``table`` is the key of our table whose rows ``better`` and ``worse``
    are; "" for a claim none of our tables can run, which then says what it
    claims in ``text`` and why it is not run in ``not_run``.
    """

    paper: str
    table: str
    better: str
    worse: str
    source: str
    kind: str = "better"
    metric: str = "psnr_y"
    text: str = ""
    not_run: str = ""
    # For a claim without rows: the section of erlrestore.paper_figures that measures it ("erlnet_fig3",
    # "erlnet_table4", "rethinking_fig7"); once its records exist the page shows their outcome, not "not run".
    figure: str = ""

    @property
    def key(self):
        return f"{self.table or 'none'}:{self.kind}:{self.better}:{self.worse}"


_STRATEGIES = ("ma_a", "ma_b", "ma_c", "ma_d", "dt")
_MA = ("ma_a", "ma_b", "ma_c", "ma_d")


def _erlnet_table2():
    t = "erlnet_table2"
    source = ("Table 2; Sec. 4.2 text (\"the improvement with skipconnection and further with the proposed feature "
              "fusion block\")")
    return [
        Claim(ERLNET, t, "memd", "memd_minus", source),
        Claim(ERLNET, t, "memd_minus", "memd_minus_minus", source),
        Claim(ERLNET, t, "memd", "memd_minus_minus", "Table 2"),
    ]


def _erlnet_table3(t):
    """Table 3's claims about the rows of our table ``t`` (erlnet_table3: the equal-total budget;
    erlnet_table3_each: the paper's budget)."""
    claims = {}

    def add(better, worse, source, kind="better"):
        key = (better, worse, kind)
        if key in claims:
            parts = claims[key].source.split("; ")
            parts += [part for part in source.split("; ") if part not in parts]
            claims[key] = dataclasses.replace(claims[key], source="; ".join(parts))
        else:
            claims[key] = Claim(ERLNET, t, better, worse, source, kind)

    # (1) "The results with the strategy of DT are worse than that of MS on both datasets regardless of the
    # entanglement approaches": every stage-wise (MA) strategy beats DT, MA_A included.
    for e in ("clgd", "mlgd"):
        for s in _MA:
            add(f"erlnet_{s}_{e}", f"erlnet_dt_{e}", "Table 3; Sec. 4.2 conclusion (1): DT worse than MS")
    # (2) "The results of different setups with MLGD are generally better than that of CLGD ... regardless of the
    # specific training strategy".
    for s in _STRATEGIES:
        add(f"erlnet_{s}_mlgd", f"erlnet_{s}_clgd", "Table 3; Sec. 4.2 conclusion (2): MLGD better than CLGD")
    # "The combination of MA_D and MLGD achieves the best results on both datasets".
    for e in ("clgd", "mlgd"):
        for s in _STRATEGIES:
            if (s, e) != ("ma_d", "mlgd"):
                add("erlnet_ma_d_mlgd", f"erlnet_{s}_{e}", "Table 3; Sec. 4.2 text: MA_D + MLGD best")
    # "The results from DT and MEMD are similar and are both worse than that from MS".
    for e in ("clgd", "mlgd"):
        add(f"erlnet_dt_{e}", "memd", "Tables 2 and 3; Sec. 4.2 text: DT and MEMD similar", kind="similar")
        for s in _MA:
            add(f"erlnet_{s}_{e}", "memd", "Tables 2 and 3; Sec. 4.2 text: MEMD worse than MS")
    # Sec. 4.3, Fig. 3: "over half the test samples on each dataset ... are better restored with ERL-Net" (MA_D +
    # MLGD, footnote 2) than with MEMD.
    add("erlnet_ma_d_mlgd", "memd", "Sec. 4.3, Fig. 3: over half the test images better with ERL-Net than MEMD",
        kind="majority")
    return list(claims.values())


# Table II's claims, the same for every column: (better, worse, kind, where the text says it).
_TABLE2_CLAIMS = (
    ("pix2pix_unet8_lsgan", "pix2pix_unet8", "better",
     "Sec. VI.3 text (LSGAN \"significantly improves the restoration performances\"); Sec. VI.4"),
    ("unet5_lsgan", "pix2pix_unet8_lsgan", "no_worse", "Sec. VI.4 text (\"with no performance drop on UNet-5\")"),
    ("unet5_lsgan_infoaccum15", "unet5_lsgan", "better", "Sec. VI.4 text (apparent improvement with InfoAccum-15)"),
    ("unet5_lsgan_infoaccum15_subpix", "unet5_lsgan_infoaccum15", "better",
     "Sec. VI.2 and VI.4 text, App. G (SubPixUpsamp improves restoration)"),
    ("unet5_lsgan_infoaccum15_subpix", "pix2pix_unet8", "better",
     "Sec. VI.4 text (the proposed solutions improve on the pix2pix baseline)"),
)


def _rethinking_table2():
    """Table II's claims for each of its columns, each of our tables; a claim is left out of a column where the
    paper prints no number ("-") for one of its two rows. The Rain800 column (the first we ran) cites "Table
    II", the others name their column."""
    claims = []
    for key, (column, _, _) in paper_tables.TABLE2_COLUMNS.items():
        numbers = {row.id: row.paper_psnr for row in paper_tables.TABLES[key].rows}
        cited = "Table II" if key == "rethinking_table2" else f"Table II, {column} column"
        for better, worse, kind, text in _TABLE2_CLAIMS:
            if numbers[better] is not None and numbers[worse] is not None:
                claims.append(Claim(RETHINKING, key, better, worse, f"{cited}; {text}", kind))
    return claims


# Table I: the range of down-sampling layers (UNet levels) at which each task's performance saturates.
TABLE1_SATURATION = {"denoise": (2, 3), "derain": (3, 4), "dehaze": (4, 5)}


def _rethinking_table1():
    """Table I / Fig. 3, per task with saturation range lo-hi: UNet-lo beats UNet-(lo-1) (the minimum the task
    needs), and UNet-hi is no worse than every deeper UNet of the table (more layers do not help)."""
    minimum = ("Table I (\"Minimum numbers of down-sampling layers required\"); Sec. VI.1 text; Fig. 3")
    saturated = ("Table I (\"more than this number the performances do not increase\"); Sec. VI.1 text (a larger "
                 "N \"does not improve the performance of the model (UNet)\"); Fig. 3")
    claims = []
    for task, (lo, hi) in TABLE1_SATURATION.items():
        key = f"rethinking_table1_{task}"
        claims.append(Claim(RETHINKING, key, f"unet{lo}", f"unet{lo - 1}", minimum))
        for n in paper_tables.TABLE1_LEVELS:
            if n > hi:
                claims.append(Claim(RETHINKING, key, f"unet{hi}", f"unet{n}", saturated, kind="no_worse"))
    return claims


def _rethinking_table3():
    t = "rethinking_table3"
    best = "App. G text (the model with details enhancement reconstructs best)"
    return [
        Claim(RETHINKING, t, "recon_unet5", "recon_endec5", "Table III"),
        Claim(RETHINKING, t, "recon_pix2pix_unet8", "recon_endec5", "Table III"),
        Claim(RETHINKING, t, "recon_unet5", "recon_pix2pix_unet8",
              "Table III; App. F text (\"a 5-layer UNet can already achieve the same performance as the 8-layer "
              "UNet\")", kind="no_worse"),
        Claim(RETHINKING, t, "recon_unet5_infoaccum15", "recon_unet5",
              "Table III; Sec. VI.2 and App. G text (InfoAccum reduces the details loss)"),
        Claim(RETHINKING, t, "recon_unet5_infoaccum15_subpix", "recon_unet5_infoaccum15",
              "Table III; Sec. VI.2 text (\"Apparent improvements can be observed in the both image reconstruction "
              "(Table. III)\")"),
        Claim(RETHINKING, t, "recon_unet5_infoaccum15_subpix", "recon_unet5", "Table III; " + best),
        Claim(RETHINKING, t, "recon_unet5_infoaccum15_subpix", "recon_pix2pix_unet8", "Table III; " + best),
        Claim(RETHINKING, t, "recon_unet5_infoaccum15_subpix", "recon_endec5", "Table III; " + best),
    ]


def _rethinking_fig6():
    """Fig. 6: "performances improve along with the increase of layers": each depth of
    :data:`~erlrestore.paper_tables.FIG6_LAYERS` beats the one before it, and the deepest beats none at all
    (the whole trend, which holds even where one step is too small to show)."""
    t = "rethinking_fig6"
    source = ("Sec. VI.2 text (performances \"do improve along with the increase of layers\"); App. G text (\"as the "
              "number of InfoAccum layers increases, the deraining performances of the models also improve "
              "significantly\"); Fig. 6")
    ids = [row.id for row in paper_tables.TABLES[t].rows]  # in the order of FIG6_LAYERS
    claims = [Claim(RETHINKING, t, deeper, shallower, source) for shallower, deeper in zip(ids, ids[1:])]
    claims.append(Claim(RETHINKING, t, ids[-1], ids[0], source))
    return claims


def _rethinking_fig13():
    """Fig. 13 / App. H.A: InfoAccum-15 at the "1st" position (ours 0) beats none and every single deeper
    position; the "2nd" (ours 1) still beats none ("minor improvement"). The paper's "deeper layers does not may
    much different" is not claimed apart: it is what "the greatest improvement" at the 1st leaves for them."""
    t = "rethinking_fig13"
    ids = {positions: row.id for positions, row in zip(paper_tables.FIG13_POSITIONS, paper_tables.TABLES[t].rows)}
    greatest = ("App. H.A text (the module at the \"1st\" position \"brings the greatest improvement\" while "
                "deeper layers \"does not may much different\"); Fig. 13")
    claims = [Claim(RETHINKING, t, ids[(0,)], ids[()], greatest)]
    claims += [Claim(RETHINKING, t, ids[(0,)], ids[(k,)], greatest) for k in (1, 2, 3, 4)]
    claims.append(Claim(RETHINKING, t, ids[(1,)], ids[()],
                        "App. H.A text (InfoAccum at the \"2nd\" position \"also make minor improvement on the "
                        "models\"); Fig. 13"))
    return claims


def _not_run(paper, source, text, reason, kind="better", figure=""):
    return Claim(paper, "", "", "", source, kind=kind, text=text, not_run=reason, figure=figure)


_NO_ROW = "no table of ours trains these methods"


def _without_rows():
    return [
        _not_run(ERLNET, "Table 2, AGAN-Data column", "MEMD > MEMD- > MEMD-- on raindrop removal",
                 "our ERL-Net tables are scored on rain-streak test sets only"),
        _not_run(ERLNET, "Table 3, AGAN-Data column; Sec. 4.2 conclusions",
                 "the Table 3 orderings (MS > DT, MLGD > CLGD, MA_D + MLGD best) on raindrop removal",
                 "our ERL-Net tables are scored on rain-streak test sets only"),
        _not_run(ERLNET, "Table 3; Sec. 4.2 text",
                 "every setup except MA_A and DT (Rain100H) beats the previous state of the art (30.38 / 0.8939)",
                 _NO_ROW + "; the state of the art is NLEDN's published number"),
        _not_run(ERLNET, "Sec. 4.3, Fig. 3 (right)",
                 "ERL-Net improves more of the hard test images (below MEMD's mean PSNR) than of the easy ones",
                 "no records of both ERL-Net (MA_D + MLGD) and MEMD in Table 3 yet; once there, their per-image "
                 "PSNRs give the shares (ERL-Net Fig. 3 section), without a verdict: two shares of different "
                 "images are not a paired comparison",
                 kind="other", figure="erlnet_fig3"),
        _not_run(ERLNET, "Table 4; Sec. 4.3 text",
                 "ERL-Net improves over MEMD in both rain and background regions, more in the rain (mIoR > mIoB)",
                 "needs both models' restorations: python -m tools.erlnet_table4 makes its records from the "
                 "run folders of the Table 3 records",
                 kind="other", figure="erlnet_table4"),
        _not_run(ERLNET, "Table 5; Sec. 4.4 text",
                 "ERL-Net beats DSC, GMM, DDN, JORDER, DID, NLEDN and PReNet on DDN-Data, DID-Data and Rain100H",
                 _NO_ROW),
        _not_run(ERLNET, "Table 6; Sec. 4.4 text", "ERL-Net beats Eigen et al., pix2pix and AGAN on raindrop removal",
                 _NO_ROW),
        _not_run(RETHINKING, "Sec. VI.1, Fig. 3; App. F",
                 "En/Decoder (no skip connections) climbs to 2-3 down-sampling layers, then drops sharply as more "
                 "are added",
                 "our Table I tables sweep the UNet's levels only (UNet-1 to UNet-6); none sweeps En/Decoder",
                 kind="other"),
        _not_run(RETHINKING, "Sec. VI.1, Fig. 3; App. F",
                 "UNet-7 and UNet-8 are no better than the saturated UNet (the paper sweeps N = 1 to 8)",
                 "our Table I tables stop at UNet-6; pix2pix (UNet-8) is in Table II, trained on other crops",
                 kind="other"),
        _not_run(RETHINKING, "App. H.B, Fig. 14",
                 "InfoAccum beats the Residual, ContextDilated, SCAN, Recursive, Attention and Dense modules",
                 _NO_ROW),
        _not_run(RETHINKING, "Sec. VI.3, Fig. 7; App. F",
                 "the training loss converges in two stages: fast at first, then suddenly slower",
                 "a claim about loss curves, not a table's PSNR: python -m tools.rethinking_fig7 fits a run's "
                 "logged losses",
                 kind="other", figure="rethinking_fig7"),
        _not_run(RETHINKING, "Sec. VI.3, Fig. 7",
                 "pre-training the generator on reconstruction eases that convergence",
                 "needs the same GAN trained with and without the pre-training and their loss curves compared; "
                 "flags/unet5_lsgan_infoaccum15_subpix_recon_pretrain.flags trains the recipe, outside the tables",
                 kind="other"),
    ]


CLAIMS = tuple(_erlnet_table2() + _erlnet_table3("erlnet_table3") + _erlnet_table3("erlnet_table3_each") + _rethinking_table1() + _rethinking_table2() + _rethinking_table3()
               + _rethinking_fig6() + _rethinking_fig13() + _without_rows())


def for_table(table_key):
    """The claims about rows of one of our tables, in the order above."""
    return tuple(c for c in CLAIMS if c.table == table_key)


def without_rows():
    """The claims no table of ours can run."""
    return tuple(c for c in CLAIMS if not c.table)


def check(tables):
    """Raises ValueError when a claim names a row its table lacks, repeats, or has an unknown kind."""
    seen = set()
    for claim in CLAIMS:
        if claim.key in seen and claim.table:
            raise ValueError(f"claim listed twice: {claim.key}")
        seen.add(claim.key)
        if not claim.table:
            if not (claim.text and claim.not_run):
                raise ValueError(f"a claim without rows needs text and not_run: {claim}")
            continue
        if claim.kind not in verdicts.KINDS:
            raise ValueError(f"unknown kind {claim.kind!r} in {claim.key}")
        ids = {row.id for row in tables[claim.table].rows}
        for row in (claim.better, claim.worse):
            if row not in ids:
                raise ValueError(f"claim {claim.key}: no row {row} in {claim.table}")
