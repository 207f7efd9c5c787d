"""gapeval: measure how far a unified multimodal model is from being unified.

The data flow is suites -> models -> run store -> judges -> scoring -> reports; this facade exposes the
pieces a notebook needs.
"""

from gapeval.errors import GapevalError
from gapeval.items import Category, Direction, Item

__version__ = "0.1.0"
__all__ = ["Category", "Direction", "GapevalError", "Item", "__version__"]
