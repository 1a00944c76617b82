import sys

from craving_circuits.book.cli import main

sys.exit(main())
