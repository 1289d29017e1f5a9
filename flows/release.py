"""Entry point of the `release_dataset` flow (``flows/release.py:release_dataset``).

The flow is `selfinstruct.orchestration.release.release_dataset`, shipped in the wheel.
"""

from selfinstruct.orchestration.release import release_dataset

__all__ = ["release_dataset"]
