"""The Prefect flows: orchestration over the selfinstruct library, with no logic of their own.

They live in the package so an installed wheel runs them (`generate --prefect`, `release
--prefect`, `serve`, Dask workers); the project's top-level `flows/` holds the deployment
entry points (`prefect.yaml`) that import them. A flow turns its parameters into library
calls (`run_identity`, `run`, `pipeline`, `scale_out`, `release`, `hub`) and publishes
artifacts; policy lives in those modules, not here.

Nothing is imported here: `import prefect` costs ~2 s and must follow
`selfinstruct.prefect_env.configure()`, so callers import the flow modules themselves.
"""
