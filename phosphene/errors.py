"""The one exception type the CLI turns into a one-line message.

Raise ``PhospheneError`` (or a subclass) for anything a user did wrong or can fix: a missing
file, an unsupported checkpoint, a bad preset value. The message should name the thing that was
wrong and, where possible, what is allowed instead.
"""


class PhospheneError(Exception):
    """A user-facing error: the CLI prints its message on one line, without a traceback."""
