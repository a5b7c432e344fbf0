"""The command line: argument parsing, one module per command group, plain prompts, renderers."""
