"""Test set-up shared by every test file: keep torch polite on a shared, small machine."""

import os

# must happen before torch is first imported: idle OpenMP threads then sleep instead of spinning
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

if "OMP_NUM_THREADS" not in os.environ:
    torch.set_num_threads(min(2, os.cpu_count() or 1))

from hypothesis import settings  # noqa: E402

# property tests write no example database; under CI they are derandomised, so a run is
# reproducible (locally every run explores new examples)
settings.register_profile("local", database=None)
settings.register_profile("ci", database=None, derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "local")
