"""Test set-up shared by every test file: keep torch polite on a shared, small machine."""

import os

# must happen before torch is first imported: idle OpenMP threads then sleep instead of spinning
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

if "OMP_NUM_THREADS" not in os.environ:
    torch.set_num_threads(min(2, os.cpu_count() or 1))
