"""`python -m convection`: the convection command line."""

from convection.cli import main

main()
