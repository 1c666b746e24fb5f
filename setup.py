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
    # The page of erlrestore-serve (erlrestore.serving.page): static HTML, JavaScript and CSS.
    package_data={"erlrestore.pretrained": ["*.json", "*.npz"], "erlrestore.serving": ["static/*"]},
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
                 "tf2onnx", "onnx", "onnxruntime", "ai-edge-litert", "openvino",
                 "bm3d",  # so that CI tests the CBM3D baseline (see "baselines")
                 # drives a headless Chromium through the page of erlrestore-serve (tests/test_serving_page.py;
                 # the browser and chromium-driver come from the system: .ci/run installs them with apt-get)
                 "selenium"],
        # ONNX export (erlrestore-export --format=onnx) and erlrestore-restore --backend=onnxruntime.
        # Checked with tf2onnx 1.17.0, onnx 1.23.2, onnxruntime 1.32.0 on numpy 2.4 / protobuf 7 / TF 2.21
        # (tf2onnx 1.17 predates numpy 2; export applies Keras' patch for it).
        "onnx": ["tf2onnx", "onnx", "onnxruntime"],
        # erlrestore-restore --backend=litert without TensorFlow: LiteRT's interpreter (TF 2.21 deprecates
        # tf.lite.Interpreter in its favour; export needs only TensorFlow's converter). Checked with ai-edge-litert
        # 2.3.0 (about 60 MB installed) on Python 3.11 x86-64.
        "litert": ["ai-edge-litert"],
        # erlrestore-export --format=openvino and --backend=openvino. Checked with openvino 2026.4.1 (about 180 MB
        # installed, with openvino-telemetry) on Python 3.11 x86-64.
        "openvino": ["openvino"],
        # gRPC for erlrestore-client (erlrestore.client) and erlrestore-serve --grpc_port (needs TF >= 2.21).
        "grpc": ["tensorflow-serving-api"],
        # Figures of the sweep and loss-fit tools; without it they still write CSVs.
        "plots": ["matplotlib"],
        # The PyTorch reference of tools.bench_peer (the published pix2pix). Not a test dependency: its tests
        # skip without it. The CPU build is enough and far smaller than the default CUDA one:
        # pip install torch --index-url https://download.pytorch.org/whl/cpu  (before pip install -e '.[peer]').
        "peer": ["torch"],
        # CBM3D for the classical de-noising baseline (erlrestore.classical.cbm3d, tools.classical_baselines):
        # the maintained BM3D implementation from its authors' group (Tampere University). We call it and do not
        # write BM3D ourselves. Checked with bm3d 4.0.3 (it brings bm4d). Its licence allows non-commercial use
        # only, so it stays an optional extra: erlrestore imports it only when CBM3D is asked for.
        "baselines": ["bm3d"],
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
