"""`python -m vbench` runs the command line."""

from vbench.cli import main

main()
