"""erlrestore: learned image restoration (de-raining, de-hazing, de-noising).

Data flows one way: ``erlrestore.data`` (pairing, decoding, tf.data, synthetic
degradations) -> models -> training -> ``erlrestore.metrics`` (evaluation) ->
export / serving. ``erlrestore.color`` holds the one RGB -> Y conversion that
data and metrics share.

``erlrestore.restore(image, model="pretrained:erlnet-derain")`` restores a
NumPy image in one call (:mod:`erlrestore.api`).
"""

__version__ = "0.1.0"

__all__ = ["restore"]


def __getattr__(name):
    # erlrestore.restore (erlrestore.api) is imported on first use, so that `import erlrestore` (which every
    # submodule import runs) stays cheap: no TensorFlow until a model is loaded.
    if name == "restore":
        from erlrestore.api import restore

        return restore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
