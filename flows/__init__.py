"""Prefect flows: orchestration over the selfinstruct library, with no logic of their own."""
