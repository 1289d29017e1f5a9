"""Entry point of the `generate_dataset` flow (``flows/generate.py:generate_dataset``).

The flow is `selfinstruct.orchestration.generate.generate_dataset`, shipped in the wheel.
"""

from selfinstruct.orchestration.generate import generate_dataset

__all__ = ["generate_dataset"]
