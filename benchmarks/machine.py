"""What every benchmark result records: the machine, the library versions and the git commit."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import numpy as np


def machine() -> dict:
    import catboost
    import onnxruntime

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text()
                .splitlines() if line.startswith("model name")), platform.processor())
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).parent).stdout.strip()
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__, "catboost": catboost.__version__,
            "onnxruntime": onnxruntime.__version__, "git_commit": commit,
            "load_average": os.getloadavg()}
