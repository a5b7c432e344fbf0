"""wizard: from a fresh GPU machine to a built and tested collective-communication stack."""

__version__ = "0.1.0"
