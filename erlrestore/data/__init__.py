"""Data: decoding (image_files), pairing of benchmark layouts (pairing), tf.data
pipelines (pipeline), TFRecord shards (tfrecord) and synthetic degradations
(synthetic). Import the submodule you need."""
