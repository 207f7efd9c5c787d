"""``python -m gapeval``."""

from gapeval.cli import main

main()
