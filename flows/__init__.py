"""Prefect deployment entry points (`prefect.yaml`): thin imports of `selfinstruct.orchestration`.

The flows themselves live in the package, so an installed wheel runs them too; these files
keep the paths users and `prefect.yaml` point at (``flows/generate.py:generate_dataset``).
"""
