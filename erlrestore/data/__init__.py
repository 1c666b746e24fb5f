"""Data: decoding (image_files), pairing of benchmark layouts (pairing), tf.data
pipelines (pipeline), TFRecord shards (tfrecord) and synthetic degradations
(synthetic, which re-exports the degradations package, one module per kind).
Import the submodule you need."""
