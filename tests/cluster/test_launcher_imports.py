"""The launcher must set up the Ray cluster's token before Ray is first imported (Ray fixes its
authentication mode at import), so importing the launcher must not import Ray."""

from __future__ import annotations

import subprocess
import sys


def test_launcher_modules_when_imported_leave_ray_unimported() -> None:
    code = (
        "import sys\n"
        "import cluster.cli, cluster.stack, cluster.status, cluster.components\n"
        "import core.named_actors\n"
        "print('ray' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == "False"
