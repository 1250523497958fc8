"""Imported before numpy: one OpenBLAS thread for the benchmark's own process.

On a small shared machine OpenBLAS's worker threads spin inside scipy's L-BFGS-B (the shop
prior fits): measured here, generating 20 shops took 6.3 s of CPU with the default threads
and 2.4 s with one. The app processes the benchmark starts get the environment as it was
(PINNED_BY_US tells whether to take the setting back out), so they run as deployed.
"""

from __future__ import annotations

import os
import sys

# Only when it can still take effect (numpy not loaded yet, e.g. not under pytest), so a
# process that imports this late does not hand the setting to its other children.
PINNED_BY_US = "OPENBLAS_NUM_THREADS" not in os.environ and "numpy" not in sys.modules
if PINNED_BY_US:
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
