"""The pyfunc wrapper's old module path, kept for model versions logged before it moved.

Such a version carries its own copy of the old `pyfunc_entry.py`, which MLflow runs on
load: `from tailor.training.pyfunc import TailorModel`. The class lives in
`tailor.registry.pyfunc`; importing this module (and `tailor.training`) loads nothing
else. Reads and writes nothing.
"""

from tailor.registry.pyfunc import TailorModel

__all__ = ["TailorModel"]
