"""Exit codes and the error a user mistake raises."""

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_INTERNAL = 70  # a bug in the wizard (sysexits' EX_SOFTWARE), never a finding


class UsageError(Exception):
    """A mistake in what the user asked; printed as one line, exit code 2."""
