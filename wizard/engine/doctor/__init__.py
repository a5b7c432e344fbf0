"""One host: the doctor's run over the checks, the fixes for what it found, the targets."""
