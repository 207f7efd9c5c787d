"""``python -m gapeval.cli``."""

from gapeval.cli import main

main()
