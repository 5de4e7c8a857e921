"""python -m kit: the same as the kit command."""

from .cli import main

if __name__ == "__main__":  # not when a spawned worker process (kit train --executor process) imports it
    main()
