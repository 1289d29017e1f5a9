"""Request batches as Prefect task runs on a Dask cluster (`task_runner="dask"`).

The planning — which requests, batched how, sent how far ahead, within which budget — is
`selfinstruct.scale_out`'s; this module only says how a batch is sent: as one
`<stage>-answers` task run (bootstrap, classify, instances, a recipe's own stages) through
prefect-dask, with Prefect's retries.

When it pays: a Dask task costs ~100 ms of overhead on top of its batch, so it is for batches
that take seconds (slow or rate-limited-per-client endpoints, many workers each with their
own egress), not for a fast local server.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.states import State
from prefect.tasks import exponential_backoff
from prefect_dask import DaskTaskRunner

from selfinstruct.llm import Completion, EndpointRefused, Request
from selfinstruct.pipeline import Generator
from selfinstruct.remote_batches import BatchHandle
from selfinstruct.scale_out import RemoteClient, answer_batch, route_requests


def _worth_retrying(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """A refused key or unknown model fails every attempt the same way: do not retry it."""
    return not isinstance(state.result(raise_on_failure=False), EndpointRefused)


@task(name="instances-answers", retries=2, retry_delay_seconds=exponential_backoff(2),
      retry_jitter_factor=0.5, retry_condition_fn=_worth_retrying, cache_policy=NO_CACHE,
      persist_result=False)
def answer_requests(endpoint: dict[str, Any], requests: list[Request]) -> list[Completion]:
    """One batch of requests answered on a worker (`scale_out.answer_batch`)."""
    return answer_batch(endpoint, requests)


def step_runner(task_step: Callable[..., Any]) -> Callable[..., Any]:
    """`task_step`, except that the steps that send requests run in the flow's own context.

    Prefect ships the submitting context to the worker, and a step task's context holds its
    function — a method of the (unpicklable) generator. Those steps' Prefect task runs are
    the workers' "<stage>-answers" batches; using the answers in order takes milliseconds.
    Writing the version stays a task of its own.
    """

    def step(name: str, fn: Callable[..., Any], *args: Any) -> Any:
        return task_step(name, fn, *args) if name == "write-version" else fn(*args)

    return step


def install(gen: Generator, runner: DaskTaskRunner) -> RemoteClient:
    """Route the run's requests to the cluster behind `runner`, one task run per batch,
    named after its stage ("bootstrap-answers", "instances-answers", …)."""

    def send(endpoint: dict[str, Any], requests: list[Request]) -> BatchHandle:
        named = answer_requests.with_options(name=f"{requests[0].stage}-answers")
        future = runner.submit(named, {"endpoint": endpoint, "requests": requests})
        return future

    workers = max(1, sum(runner.client.nthreads().values()))
    return route_requests(gen, send, workers)
