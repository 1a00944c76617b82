import sys

from craving_circuits.book.cli import main

# Guarded: worker processes started by spawning (a local Dask cluster) import this module again.
if __name__ == "__main__":
    sys.exit(main())
