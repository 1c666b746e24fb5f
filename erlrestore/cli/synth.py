"""erlrestore-synth: make a paired training/test set from clean photos.

    erlrestore-synth --clean_dir=photos --output_dir=rainy --degradation=rain [--copies=3]
    erlrestore-synth --procedural=20 --size=128 --output_dir=demo --degradation=haze --haze_beta=0.5,1.5
    erlrestore-synth --clean_dir=photos --output_dir=rainy --degradation=real_rain --streak_dir=streaks \
        --streak_layers=1,8

Writes OUTPUT/input/<name>.png (degraded) and OUTPUT/target/<name>.png (clean),
the ``folders`` layout that ``erlrestore.data.pairing`` reads; with --copies>1
the names are <stem>_<k>.png. Parameter flags take a number or a "low,high"
range sampled per image (or per call for streak geometry); flags that do not
apply to --degradation are ignored with a warning. real_rain and
real_heavy_rain composite rendered streak layers from --streak_dir (required
for them; see :mod:`erlrestore.data.synthetic`). The last stdout line is
``wrote <N> pairs (<degradation>) to <OUTPUT>``.
"""


from absl import app, flags, logging

from erlrestore.cli import entry_point, fail, finish

from erlrestore.data import image_files, synthetic

FLAGS = flags.FLAGS

# flag name -> degradation parameter name (see erlrestore.data.synthetic).
FLAG_PARAMS = {
    "rain_density": "density",
    "rain_length": "length",
    "rain_angle": "angle",
    "rain_width": "width",
    "rain_brightness": "brightness",
    "rain_blur": "blur",
    "rain_layers": "layers",
    "haze_beta": "beta",
    "airlight": "airlight",
    "haze_depth": "depth",
    "depth_variation": "depth_variation",
    "noise_sigma": "sigma",
    "noise_peak": "peak",
    "streak_layers": "streak_layers",
    "streak_transparency": "transparency",
    "streak_scale": "scale",
    "streak_blur": "streak_blur",
    "mix_procedural": "mix_procedural",
    "veil_share": "veil_share",
}

_RANGE_HELP = ' A number or a "low,high" range; default: the degradation\'s own.'


def define_flags(flag_values=FLAGS):
    """Defines the tool's flags on ``flag_values`` (the global FLAGS by default)."""
    fv = dict(flag_values=flag_values)
    flags.DEFINE_string("clean_dir", None, "Folder of clean photos (or use --procedural).", **fv)
    flags.DEFINE_integer("procedural", 0, "Generate this many synthetic clean images instead of --clean_dir.",
                         lower_bound=0, **fv)
    flags.DEFINE_string("size", "256", 'Size of --procedural images: "N" (square) or "HxW" (height x width).',
                        **fv)
    flags.DEFINE_string("output_dir", None, "Destination; gets input/ and target/ sub-folders.", **fv)
    flags.DEFINE_enum("degradation", None, list(synthetic.DEGRADATIONS), "Degradation to apply.", **fv)
    flags.DEFINE_integer("seed", 0, "Base seed; image i, copy k uses (seed, i * 10000 + k).", lower_bound=0, **fv)
    flags.DEFINE_integer("copies", 1, "Degraded variants per clean image.", lower_bound=1,
                         upper_bound=synthetic.MAX_COPIES, **fv)
    flags.DEFINE_boolean("overwrite", False, "Allow writing into a non-empty --output_dir.", **fv)
    flags.DEFINE_enum("bit_depth", "8", ["8", "16"], "Bits per channel of the PNGs written.", **fv)
    flags.DEFINE_string("rain_density", None, "rain/heavy_rain: fraction of pixels covered by streaks." + _RANGE_HELP, **fv)
    flags.DEFINE_string("rain_length", None, "rain/heavy_rain: streak length in pixels." + _RANGE_HELP, **fv)
    flags.DEFINE_string("rain_angle", None, "rain/heavy_rain: degrees from vertical, + leans the lower end right."
                        + _RANGE_HELP, **fv)
    flags.DEFINE_string("rain_width", None, "rain/heavy_rain: streak width in pixels." + _RANGE_HELP, **fv)
    flags.DEFINE_string("rain_brightness", None, "rain/heavy_rain: peak streak intensity." + _RANGE_HELP, **fv)
    flags.DEFINE_float("rain_blur", None, "rain/heavy_rain: Gaussian sigma (pixels) softening the streaks.", **fv)
    flags.DEFINE_integer("rain_layers", None, "heavy_rain: number of streak layers.", **fv)
    flags.DEFINE_string("haze_beta", None, "haze/heavy_rain: scattering coefficient per unit depth." + _RANGE_HELP,
                        **fv)
    flags.DEFINE_string("airlight", None, "haze/heavy_rain: atmospheric light in [0, 1]." + _RANGE_HELP, **fv)
    flags.DEFINE_enum("haze_depth", None, list(synthetic.DEPTH_PROXIES), "haze/heavy_rain: depth proxy.", **fv)
    flags.DEFINE_string("depth_variation", None, "haze/heavy_rain: amplitude of the random depth variation."
                        + _RANGE_HELP, **fv)
    flags.DEFINE_string("noise_sigma", None, "gaussian_noise / poisson_gaussian_noise: std on the 0-255 scale."
                        + _RANGE_HELP, **fv)
    flags.DEFINE_string("noise_peak", None, "poisson_gaussian_noise: photons at white (smaller is noisier)."
                        + _RANGE_HELP, **fv)
    flags.DEFINE_string("streak_dir", None, "real_rain/real_heavy_rain (required for them): folder of rendered "
                        "rain-streak images (grey PNGs; RGB is converted to grey).", **fv)
    flags.DEFINE_string("streak_layers", None, "real_rain/real_heavy_rain: streak layers per image (integers)."
                        + _RANGE_HELP, **fv)
    flags.DEFINE_string("streak_transparency", None, "real_rain/real_heavy_rain: transparency t of each layer."
                        + _RANGE_HELP, **fv)
    flags.DEFINE_string("streak_scale", None, "real_rain/real_heavy_rain: up-scaling of each layer." + _RANGE_HELP,
                        **fv)
    flags.DEFINE_string("streak_blur", None, "real_rain/real_heavy_rain: Gaussian sigma (pixels) of each layer."
                        + _RANGE_HELP, **fv)
    flags.DEFINE_float("mix_procedural", None, "real_rain/real_heavy_rain: probability that an image also gets a "
                       "procedural streak layer (shaped by the --rain_* flags).", **fv)
    flags.DEFINE_float("veil_share", None, "real_heavy_rain: probability that an image gets the veil (the others "
                       "are plain real rain).", **fv)
    flags.DEFINE_string("degradation_params", "", "Any parameters of --degradation as name=value;name=low,high "
                        "(e.g. density_level=light;reference_size=320 for dense_rain; see "
                        "erlrestore.data.synthetic). A parameter set here and by its own flag is an error.", **fv)


def parse_number_or_range(text):
    """ "0.5" -> 0.5, "0.5,1.5" -> (0.5, 1.5); ValueError otherwise."""
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) not in (1, 2) or not all(parts):
        raise ValueError(f'expected a number or "low,high", got {text!r}')
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise ValueError(f'expected a number or "low,high", got {text!r}') from None
    return values[0] if len(values) == 1 else tuple(values)


def parse_size(text):
    """ "256" -> (256, 256), "240x320" -> (240, 320) (height, width)."""
    parts = str(text).lower().split("x")
    try:
        sizes = [int(p) for p in parts]
    except ValueError:
        sizes = []
    if len(sizes) not in (1, 2) or min(sizes) < 1:
        raise ValueError(f'--size must be "N" or "HxW" with positive integers, got {text!r}')
    return (sizes[0], sizes[0]) if len(sizes) == 1 else tuple(sizes)


def degradation_params_from_flags(degradation, flag_values=FLAGS):
    """The parameters set by flags that apply to ``degradation``; UsageError for bad values."""
    valid = synthetic.degradation_params(degradation)
    params = {}
    for flag_name, param in FLAG_PARAMS.items():
        raw = flag_values[flag_name].value
        if raw is None:
            continue
        if param not in valid:
            logging.warning("--%s does not apply to --degradation=%s; ignored", flag_name, degradation)
            continue
        value = raw
        if isinstance(raw, str) and param != "depth":
            try:
                value = parse_number_or_range(raw)
            except ValueError as error:
                raise app.UsageError(f"--{flag_name}: {error}") from None
        try:
            synthetic.check_params(degradation, **{param: value})
        except ValueError as error:
            raise app.UsageError(f"--{flag_name}: {error}") from None
        params[param] = value
    try:
        extra = synthetic.parse_params(flag_values["degradation_params"].value)
        synthetic.check_params(degradation, **extra)
    except ValueError as error:
        raise app.UsageError(f"--degradation_params: {error}") from None
    twice = sorted(set(extra) & set(params))
    if twice:
        raise app.UsageError(f"--degradation_params sets {', '.join(twice)}, which a flag sets too; give each once")
    params.update(extra)
    return params


def main(argv, flag_values=FLAGS):
    fv = flag_values
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not fv.output_dir:
        raise app.UsageError("--output_dir is required")
    if not fv.degradation:
        raise app.UsageError(f"--degradation is required (one of {', '.join(synthetic.DEGRADATIONS)})")
    if bool(fv.clean_dir) == bool(fv.procedural):
        raise app.UsageError("give exactly one of --clean_dir and --procedural=N")
    try:
        size = parse_size(fv.size)
    except ValueError as error:
        raise app.UsageError(str(error)) from None
    params = degradation_params_from_flags(fv.degradation, fv)
    if "streaks" in synthetic.required_params(fv.degradation):
        if not fv.streak_dir:
            raise app.UsageError(f"--degradation={fv.degradation} needs --streak_dir, a folder of rain-streak images")
        params["streaks"] = fv.streak_dir
    elif fv.streak_dir:
        logging.warning("--streak_dir does not apply to --degradation=%s; ignored", fv.degradation)
    try:
        pairs = synthetic.synthesize_folder(
            fv.output_dir,
            fv.degradation,
            clean_dir=fv.clean_dir or None,
            procedural=fv.procedural,
            size=size,
            params=params,
            seed=fv.seed,
            copies=fv.copies,
            overwrite=fv.overwrite,
            bit_depth=int(fv.bit_depth),
        )
    except image_files.DataError as error:
        return fail(error)
    return finish(f"wrote {len(pairs)} pairs ({fv.degradation}) to {fv.output_dir}")


run = entry_point(define_flags, main, __name__)

if __name__ == "__main__":
    run()
