"""The Docker image tests build and run the real image; they need root, dockerd and debootstrap.

They are not part of `python3 dev.py test` (a user's machine need not have Docker); `python3 dev.py
test-docker` installs what they need and runs them, and CI runs both. Collected only when
CRYPTOBOT_DOCKER_TESTS=1 (set by dev.py), so a plain `pytest` never half-runs them.
"""

from __future__ import annotations

import os

collect_ignore_glob = [] if os.environ.get("CRYPTOBOT_DOCKER_TESTS") == "1" else ["test_*.py"]
