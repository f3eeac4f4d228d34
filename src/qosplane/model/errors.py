"""Validation errors: every one names the key, the value and what is allowed."""

from __future__ import annotations


class QosplaneError(Exception):
    """Base of qosplane's own errors."""

    @classmethod
    def received(cls, message: str) -> QosplaneError:
        """The error another qosplane process raised, rebuilt from the message it sent: the
        fields it was built from do not travel, so they keep their class defaults."""
        exc = cls.__new__(cls)
        Exception.__init__(exc, message)
        return exc


class InvalidInput(QosplaneError):
    """A declared value that qosplane (or the upstream service it mirrors) refuses.

    `key` is the field as the user wrote it (`quota:cpu_shares`, `rules[1].dscp_mark`),
    `allowed` says what would have been accepted. The API maps this to a 400 whose body
    carries the same message; the CLI prints it and exits 2.
    """

    key: str = ""
    value: object = None
    allowed: str = ""
    reason: str = ""

    def __init__(self, key: str, value: object, allowed: str, reason: str = "") -> None:
        self.key = key
        self.value = value
        self.allowed = allowed
        self.reason = reason
        detail = f"{reason}: " if reason else ""
        super().__init__(f"{key}: {detail}got {value!r}; allowed: {allowed}")


class Conflict(QosplaneError):
    """Input that is valid alone but conflicts with what exists (duplicate rule, min > max)."""

    key: str = ""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(f"{key}: {message}")


class NoValidHost(Conflict):
    """No live host can take a new server (Nova's scheduler NoValidHost). Nova accepts the
    server and puts it in ERROR with this as its fault, rather than refusing the request."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__("server.availability_zone", f"No valid host was found. {reason}")


# The largest integer the upstream databases store (Nova's db.MAX_INT, SQL INTEGER):
# API integers that reach a column are bounded by it, so a bigger one is a 400, not an
# overflow inside the database driver.
INT32_MAX = 2**31 - 1


def parse_int(
    key: str, value: object, minimum: int | None = None, maximum: int | None = None
) -> int:
    """An integer the way upstream parses one (`int()` of a string or number), range-checked.

    Booleans and floats with a fraction are refused: Nova's `int('1.5')` fails, and a YAML
    `true` is almost certainly a mistake.
    """
    allowed = _range_text(minimum, maximum)
    if isinstance(value, bool):
        raise InvalidInput(key, value, allowed, "not an integer")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        try:
            # int() itself skips the whitespace it allows: str.strip() would also take the
            # \x1c-\x1f separators, which Nova's _validate_int (int(value)) refuses.
            number = int(value, 10)
        except ValueError:
            raise InvalidInput(key, value, allowed, "not an integer") from None
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    else:
        raise InvalidInput(key, value, allowed, "not an integer")
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise InvalidInput(key, value, allowed, "out of range")
    return number


def _range_text(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f"an integer from {minimum} to {maximum}"
    if minimum is not None:
        return f"an integer >= {minimum}"
    if maximum is not None:
        return f"an integer <= {maximum}"
    return "an integer"


class NotFound(QosplaneError):
    """A resource that does not exist (or that the caller may not see)."""

    kind: str = ""
    ref: str = ""

    def __init__(self, kind: str, ref: str) -> None:
        self.kind = kind
        self.ref = ref
        super().__init__(f"{kind} {ref} could not be found")


class RevisionMismatch(QosplaneError):
    """An `If-Match: revision_number=N` precondition that no longer holds (HTTP 412)."""

    expected: int = -1
    actual: int = -1

    def __init__(self, kind: str, ref: str, expected: int, actual: int) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"{kind} {ref}: revision_number is {actual}, the request expected {expected}"
        )


class Unauthorized(QosplaneError):
    """No valid credentials or token (HTTP 401)."""


class Forbidden(QosplaneError):
    """Authenticated, but the caller's role does not allow this (HTTP 403)."""


class MethodNotAllowed(QosplaneError):
    """The path exists but does not take this method (HTTP 405)."""


class PayloadTooLarge(QosplaneError):
    """A request body over the size the API takes (HTTP 413), refused before it is read."""


class ServiceFault(QosplaneError):
    """The service failed on its side (HTTP 5xx): the request may succeed when repeated."""


class Unreachable(QosplaneError):
    """The service could not be reached (refused, reset, timed out): worth retrying."""
