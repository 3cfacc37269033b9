"""`python -m memsvc.cli`: the same as the `memsvc` command."""

from memsvc.cli import main

main()
