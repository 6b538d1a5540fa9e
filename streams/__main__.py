"""`python -m streams`: the `patrol` command line, for where the console script is not on PATH."""

from streams.cli import main

main()
