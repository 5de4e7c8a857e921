"""python -m kit: the same as the kit command."""

from .cli import main

main()
