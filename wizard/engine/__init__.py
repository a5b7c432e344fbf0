"""The engine: runs checks (and later steps) on a Host, for the TUI, the CLI and the tests."""
