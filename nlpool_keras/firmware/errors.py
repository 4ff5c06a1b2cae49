"""The firmware stage's one error type."""


class FirmwareError(RuntimeError):
    """A firmware build or run that cannot go on; the message says what to install, pass or change."""
