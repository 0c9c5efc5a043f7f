"""SQLite's errors in the targets' terms: an error class, and whether a retry may help."""

from __future__ import annotations

import apsw

from d1bench.errors import TargetError

__all__ = ["classify_error"]

#: APSW exception -> (error class, retryable)
_ERROR_CLASSES: dict[type, tuple[str, bool]] = {
    apsw.SQLError: ("syntax", False),
    apsw.BindingsError: ("syntax", False),
    apsw.RangeError: ("syntax", False),
    apsw.ConstraintError: ("constraint", False),
    apsw.MismatchError: ("constraint", False),
    apsw.ReadOnlyError: ("read_only", False),
    apsw.TooBigError: ("limit", False),
    apsw.FullError: ("limit", False),
    apsw.BusyError: ("overloaded", True),
    apsw.LockedError: ("overloaded", True),
    apsw.InterruptError: ("interrupted", False),
    apsw.AuthError: ("auth", False),
    apsw.CantOpenError: ("not_found", False),
}


def classify_error(exc: BaseException) -> TargetError:
    """Turn an APSW exception into a :class:`TargetError`, keeping SQLite's words.

    >>> import apsw
    >>> classify_error(apsw.ConstraintError("UNIQUE constraint failed: t.a")).error_class
    'constraint'
    """
    error_class, retryable = "other", False
    for cls in type(exc).__mro__:
        if cls in _ERROR_CLASSES:
            error_class, retryable = _ERROR_CLASSES[cls]
            break
    message = str(exc.args[0]) if exc.args else type(exc).__name__
    return TargetError(message, error_class=error_class, retryable=retryable,
                       code=getattr(exc, "extendedresult", None))
