"""The errors a request can get: a ServingError carries its HTTP status; OverloadedError means busy (503)."""


class ServingError(Exception):
    """A request the server refuses: ``status`` is the HTTP status, ``message`` the error text."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = int(status)
        self.message = str(message)


class OverloadedError(ServingError):
    """Too many predictions at once: answered 503 (REST, with ``Retry-After``) or UNAVAILABLE (gRPC)."""

    def __init__(self, message):
        super().__init__(503, message)
