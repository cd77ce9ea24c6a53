"""`ragbot eval` from a checkout: python scripts/evaluate.py [--baseline] [--thresholds F] ..."""

import sys

from ragbot.cli import main

if __name__ == "__main__":
    sys.exit(main(["eval", *sys.argv[1:]]))
