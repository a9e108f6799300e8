"""Make the project root importable for the core tests.

The project is not installed into the virtualenv and ``tests/core`` deliberately has no
``__init__.py``: a package named ``core`` under ``tests`` would shadow the real ``core`` package.
"""

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[2])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
