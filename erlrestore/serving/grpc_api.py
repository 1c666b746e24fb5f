"""gRPC serving (optional): TF Serving's ``PredictionService.Predict``, when ``tensorflow-serving-api`` is installed.

Named ``grpc_api`` so that it is never mistaken for the ``grpc`` package it
imports.
"""

import time

import tensorflow as tf
from absl import logging

from erlrestore.serving import limits
from erlrestore.serving.errors import OverloadedError, ServingError
from erlrestore.serving.limits import DEFAULT_MAX_REQUEST_BYTES, PredictionLimiter
from erlrestore.serving.tracker import ProgressTracker
from erlrestore.serving.repository import DEFAULT_SIGNATURE


class GrpcUnavailableError(RuntimeError):
    """gRPC serving was asked for but ``tensorflow-serving-api`` (or ``grpcio``) is not importable."""


def grpc_available():
    """True when ``grpcio`` and ``tensorflow-serving-api`` are importable."""
    try:
        # pylint: disable=import-outside-toplevel,unused-import
        import grpc  # noqa: F401
        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc  # noqa: F401
    except ImportError:
        return False
    return True


GRPC_MISSING_MESSAGE = (
    "gRPC serving needs the tensorflow-serving-api package (and grpcio): "
    "pip install tensorflow-serving-api (its version must match TensorFlow's), or leave --grpc_port at 0 "
    "and use the REST API"
)


def make_grpc_server(repository, host="127.0.0.1", port=8500, max_message_bytes=DEFAULT_MAX_REQUEST_BYTES, workers=8,
                     limiter=None, tracker=None):
    """A started gRPC server with TF Serving's ``PredictionService.Predict``; returns ``(server, bound_port)``.

    Requests name the model, optional version and signature in
    ``model_spec`` exactly as for TF Serving; ``output_filter`` is honoured.
    Predictions go through ``limiter`` (a PredictionLimiter; pass the REST
    server's to share one bound; default: a new one). A request's progress
    goes to ``tracker`` (a ProgressTracker; pass the REST server's so that
    ``GET /v1/progress/<id>`` sees gRPC requests too) under the id of its
    ``x-request-id`` metadata (or a new one). Error codes: NOT_FOUND
    (unknown model/version), INVALID_ARGUMENT (bad inputs, unknown
    signature, an image of more than ``max_image_pixels``), UNAVAILABLE
    (busy: the limiter refused), RESOURCE_EXHAUSTED (out of memory),
    INTERNAL. Stop it with ``server.stop(grace)``.

    Raises:
      GrpcUnavailableError when grpcio / tensorflow-serving-api are missing.
      OSError when the port cannot be bound.
    """
    try:
        import concurrent.futures  # pylint: disable=import-outside-toplevel

        import grpc  # pylint: disable=import-outside-toplevel
        from tensorflow_serving.apis import (  # pylint: disable=import-outside-toplevel
            predict_pb2,
            prediction_service_pb2_grpc,
        )
    except ImportError as error:
        raise GrpcUnavailableError(f"{GRPC_MISSING_MESSAGE} ({error})") from error

    codes = {400: grpc.StatusCode.INVALID_ARGUMENT, 404: grpc.StatusCode.NOT_FOUND,
             413: grpc.StatusCode.RESOURCE_EXHAUSTED, 503: grpc.StatusCode.RESOURCE_EXHAUSTED}
    limiter = limiter or PredictionLimiter()
    tracker = tracker or ProgressTracker()

    class _PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):  # noqa: N802 (gRPC's method name)
            started = time.monotonic()
            spec = request.model_spec
            version = spec.version.value if spec.HasField("version") else None
            code = grpc.StatusCode.OK
            progress = None
            try:
                progress = tracker.begin(dict(context.invocation_metadata()).get("x-request-id"), spec.name, version)
                if spec.WhichOneof("version_choice") == "version_label":
                    raise ServingError(404, "version labels are not supported by erlrestore-serve; set version")
                try:
                    inputs = {key: tf.make_ndarray(proto) for key, proto in request.inputs.items()}
                except Exception as error:  # malformed TensorProto
                    raise ServingError(400, f"could not read the input tensors: {error}") from None
                with limiter.admitted(), limiter.running() as turn:
                    servable, signature, outputs = repository.run(spec.name, version, spec.signature_name, inputs,
                                                                  turn=turn, progress=progress)
                wanted = list(request.output_filter) or list(outputs)
                unknown = sorted(set(wanted) - set(outputs))
                if unknown:
                    raise ServingError(
                        400, f"output_filter names unknown outputs {unknown} (outputs: {sorted(outputs)})"
                    )
                response = predict_pb2.PredictResponse()
                response.model_spec.name = servable.name
                response.model_spec.version.value = servable.version
                response.model_spec.signature_name = signature.name
                for key in wanted:
                    response.outputs[key].CopyFrom(tf.make_tensor_proto(outputs[key]))
                del outputs
                if progress is not None:
                    progress.end(200)
                return response
            except ServingError as error:
                if isinstance(error, OverloadedError):
                    code = grpc.StatusCode.UNAVAILABLE
                else:
                    code = codes.get(error.status, grpc.StatusCode.INTERNAL)
                if progress is not None:
                    progress.end(error.status, error.message)
                context.abort(code, error.message)
            except Exception as error:  # pylint: disable=broad-except
                code = grpc.StatusCode.INTERNAL
                logging.exception("error answering gRPC Predict")
                if progress is not None:
                    progress.end(500, f"internal server error: {type(error).__name__}: {error}")
                context.abort(code, f"internal server error: {type(error).__name__}: {error}")
            finally:
                if progress is not None and progress.pixels >= limits.RELEASE_AFTER_PIXELS:
                    limits.release_memory()
                logging.info(
                    'gRPC Predict model=%r version=%s signature=%r %s %.1f ms', spec.name, version,
                    spec.signature_name or DEFAULT_SIGNATURE, code.name, 1000.0 * (time.monotonic() - started),
                )

    options = [
        ("grpc.max_receive_message_length", int(max_message_bytes)),
        ("grpc.max_send_message_length", -1),
    ]
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=workers), options=options)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(_PredictionService(), server)
    address = f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as error:
        raise OSError(f"cannot listen for gRPC on {address}: {error}") from error
    if not bound:
        raise OSError(f"cannot listen for gRPC on {address}")
    server.start()
    return server, bound
