"""Installs erlrestore: learned image restoration (ERL-Net, pix2pix-style GANs) on TF 2 / Keras 3."""
import setuptools

setuptools.setup(
    name="erlrestore",
    version="0.1.0",
    description=(
        "Learned image restoration for physics-based vision (de-raining, "
        "de-hazing, de-noising): ERL-Net and generative restoration models "
        "on TensorFlow 2 / Keras 3, with literature-exact Y-channel metrics."
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=setuptools.find_packages(include=["erlrestore", "erlrestore.*"]),
    # Trained models shipped with the package (erlrestore.pretrained): config + float16 weights.
    package_data={"erlrestore.pretrained": ["*.json", "*.npz"]},
    install_requires=[
        "tensorflow>=2.16",
        "keras>=3.0",
        "numpy",
        "opencv-python-headless",
        # Reads image headers (sizes) without decoding, to refuse decompression bombs first.
        "imagesize>=1.4",
        "absl-py",
        # TensorFlow 2.21 no longer pulls it in; training logs scalars and images to it.
        "tensorboard",
    ],
    extras_require={
        # scikit-image is used only by the tests, as an independent SSIM reference.
        # The tests also exercise the gRPC client and server paths. pytest-xdist runs them on two workers
        # (make test): most of the slow tests wait on one subprocess at a time, leaving a core idle.
        "test": ["pytest", "pytest-xdist", "scikit-image", "hypothesis", "tensorflow-serving-api", "matplotlib",
                 "tf2onnx", "onnx", "onnxruntime"],
        # ONNX export (erlrestore-export --format=onnx) and erlrestore-restore --backend=onnxruntime.
        # Checked with tf2onnx 1.17.0, onnx 1.23.2, onnxruntime 1.32.0 on numpy 2.4 / protobuf 7 / TF 2.21
        # (tf2onnx 1.17 predates numpy 2; export applies Keras' patch for it).
        "onnx": ["tf2onnx", "onnx", "onnxruntime"],
        # gRPC for erlrestore-client (erlrestore.client) and erlrestore-serve --grpc_port (needs TF >= 2.21).
        "grpc": ["tensorflow-serving-api"],
        # Figures of the sweep and loss-fit tools; without it they still write CSVs.
        "plots": ["matplotlib"],
        # The PyTorch reference of tools.bench_peer (the published pix2pix). Not a test dependency: its tests
        # skip without it. The CPU build is enough and far smaller than the default CUDA one:
        # pip install torch --index-url https://download.pytorch.org/whl/cpu  (before pip install -e '.[peer]').
        "peer": ["torch"],
    },
    entry_points={
        "console_scripts": [
            "erlrestore-client=erlrestore.client:run",
            "erlrestore-evaluate=erlrestore.cli.evaluate:run",
            "erlrestore-export=erlrestore.cli.export:run",
            "erlrestore-metrics=erlrestore.cli.metrics:run",
            "erlrestore-reproduce=erlrestore.cli.reproduce:run",
            "erlrestore-restore=erlrestore.cli.restore:run",
            "erlrestore-serve=erlrestore.cli.serve:run",
            "erlrestore-synth=erlrestore.cli.synth:run",
            "erlrestore-tfrecords=erlrestore.cli.tfrecords:run",
            "erlrestore-train=erlrestore.cli.train:run",
        ],
    },
)
