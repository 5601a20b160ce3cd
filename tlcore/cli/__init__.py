"""`python -m tlcore` (or the `tlcore` command): the app's operations for scripts, servers and bigger machines.

Every subcommand takes `--workspace DIR`, `--json` (machine-readable output on stdout, with English
keys) and `--lang en|ja` (else `TLCORE_LANG`, else the locale's language, else English). Bad input
ends with exit status 2 and one line on stderr saying what was wrong; a training run that fails, or
an export whose file does not predict what the app predicts, ends with exit status 1. TensorFlow is
imported only by the subcommands that need it.

- `parser`: the arguments, their help in the chosen language;
- `quick_exit`: ending a process that loaded TensorFlow without tearing TensorFlow down;
- `output`: printing results as text or JSON, and failures as one line;
- `commands`: one function per subcommand; `train`: the `train` and `spare` subcommands; `study`: `study` and
  `studies`.
"""

from tlcore.cli.main import main

__all__ = ["main"]
