"""selfinstruct: seed tasks to instruction-tuning datasets (Self-Instruct and Alpaca recipes)."""

__version__ = "0.1.0"
