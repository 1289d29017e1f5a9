"""Entry point of the `scheduled_release` flow (``flows/schedule.py:scheduled_release``).

The flow is `selfinstruct.orchestration.schedule.scheduled_release`, shipped in the wheel.
"""

from selfinstruct.orchestration.schedule import scheduled_release

__all__ = ["scheduled_release"]
