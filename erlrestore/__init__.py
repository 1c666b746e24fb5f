"""erlrestore: learned image restoration (de-raining, de-hazing, de-noising).

Data flows one way: ``erlrestore.data`` (pairing, decoding, tf.data, synthetic
degradations) -> models -> training -> ``erlrestore.metrics`` (evaluation) ->
export / serving. ``erlrestore.color`` holds the one RGB -> Y conversion that
data and metrics share.
"""

__version__ = "0.1.0"
