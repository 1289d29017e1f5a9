"""The Batch API: uploaded files and batch jobs, answered by the direct-request code.

Why: a batch line must get exactly the answer the direct endpoint gives to the same body, so
the store answers lines with :func:`tests.servers.responses.build_response`.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import Counter
from typing import Any

from tests.servers.counters import Counters
from tests.servers.faults import BATCH_LINE_ERRORS, APIError, FaultPlan, error_body
from tests.servers.hashing import fingerprint_of
from tests.servers.options import ServerOptions
from tests.servers.responses import build_response, validate_request

_BATCH_ENDPOINTS = ("/v1/chat/completions", "/v1/completions")
_PENDING = ("validating", "in_progress")


class BatchStore:
    """Uploaded files and batch jobs, in memory for the server's lifetime (not reset).

    A batch does its work when a retrieve finds it due: all its lines are answered at once by
    the very code that answers direct requests, so batch and direct answers cannot differ.
    """

    def __init__(self, options: ServerOptions, counters: Counters) -> None:
        self.options = options
        self.counters = counters
        self.plan = FaultPlan(rate=options.batch_error_rate, kinds=options.batch_error_kinds,
                              seed=options.fault_seed,
                              max_faults_per_request=options.max_faults_per_request)
        self.lock = threading.Lock()
        self.files: dict[str, tuple[dict[str, Any], bytes]] = {}
        self.batches: dict[str, dict[str, Any]] = {}  # in creation order
        self._inputs: dict[str, list[dict[str, Any]]] = {}
        self._polls: Counter[str] = Counter()
        self._ids = itertools.count(1)

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids):012d}"

    def add_file(self, data: bytes, filename: str, purpose: str) -> dict[str, Any]:
        with self.lock:
            return self._add_file(data, filename, purpose)

    def _add_file(self, data: bytes, filename: str, purpose: str) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "id": self._new_id("file"), "object": "file", "bytes": len(data),
            "created_at": int(time.time()), "filename": filename, "purpose": purpose,
            "status": "processed", "expires_at": None, "status_details": None,
        }
        self.files[meta["id"]] = (meta, data)
        self.counters.created("file")
        return meta

    def file(self, file_id: str) -> tuple[dict[str, Any], bytes]:
        with self.lock:
            if file_id not in self.files:
                raise APIError(404, f"No such File object: {file_id}", "invalid_request_error",
                                "file_not_found")
            return self.files[file_id]

    def create(self, body: Any) -> dict[str, Any]:
        """Check the request and the input file; a bad line fails the batch, as OpenAI does."""
        if not isinstance(body, dict):
            raise APIError(400, "The request body must be a JSON object.",
                            "invalid_request_error")
        endpoint = body.get("endpoint")
        if endpoint not in _BATCH_ENDPOINTS:
            raise APIError(400, f"endpoint must be one of {_BATCH_ENDPOINTS}",
                            "invalid_request_error", "invalid_endpoint")
        if body.get("completion_window") != "24h":
            raise APIError(400, "completion_window must be '24h'", "invalid_request_error")
        meta, data = self.file(str(body.get("input_file_id")))
        if meta["purpose"] != "batch":
            raise APIError(400, "The input file must be uploaded with purpose 'batch'.",
                            "invalid_request_error")
        lines, errors = _parse_batch_input(data, endpoint)
        now = int(time.time())
        with self.lock:
            batch: dict[str, Any] = {
                "id": self._new_id("batch"), "object": "batch", "endpoint": endpoint,
                "errors": None, "input_file_id": meta["id"], "completion_window": "24h",
                "status": "validating", "output_file_id": None, "error_file_id": None,
                "created_at": now, "in_progress_at": None, "expires_at": now + 86_400,
                "finalizing_at": None, "completed_at": None, "failed_at": None,
                "expired_at": None, "cancelling_at": None, "cancelled_at": None,
                "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
                "metadata": body.get("metadata"),
                "model": lines[0]["body"]["model"] if lines else None, "usage": None,
            }
            if errors:
                batch.update(status="failed", failed_at=now,
                             errors={"object": "list", "data": errors})
            self.batches[batch["id"]] = batch
            self._inputs[batch["id"]] = lines
            self.counters.created("batch")
            return dict(batch)

    def _batch(self, batch_id: str) -> dict[str, Any]:
        if batch_id not in self.batches:
            raise APIError(404, f"No batch found with id '{batch_id}'.",
                            "invalid_request_error", "batch_not_found")
        return self.batches[batch_id]

    def retrieve(self, batch_id: str) -> dict[str, Any]:
        """Advance the batch if it is due (see the module docstring), then return it."""
        with self.lock:
            batch = self._batch(batch_id)
            now = int(time.time())
            if batch["status"] in _PENDING:
                self._polls[batch_id] += 1
                waited = time.time() - batch["created_at"]
                seconds = self.options.batch_seconds
                if self._polls[batch_id] >= self.options.batch_polls or (
                        seconds is not None and waited >= seconds):
                    self._complete(batch, now)
                else:
                    batch["status"] = "in_progress"
                    batch["in_progress_at"] = batch["in_progress_at"] or now
            elif batch["status"] == "cancelling":
                batch.update(status="cancelled", cancelled_at=now)
            return dict(batch)

    def cancel(self, batch_id: str) -> dict[str, Any]:
        with self.lock:
            batch = self._batch(batch_id)
            if batch["status"] not in _PENDING:
                raise APIError(400, f"Cannot cancel a batch with status '{batch['status']}'.",
                                "invalid_request_error")
            batch.update(status="cancelling", cancelling_at=int(time.time()))
            return dict(batch)

    def list(self, limit: int, after: str | None) -> dict[str, Any]:
        with self.lock:
            newest_first = list(reversed(self.batches.values()))
        ids = [b["id"] for b in newest_first]
        start = ids.index(after) + 1 if after in ids else 0
        page = [dict(b) for b in newest_first[start:start + limit]]
        return {"object": "list", "data": page,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
                "has_more": start + limit < len(newest_first)}

    def _complete(self, batch: dict[str, Any], now: int) -> None:
        chat = batch["endpoint"] == "/v1/chat/completions"
        output: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        tokens = [0, 0]
        for line in self._inputs[batch["id"]]:
            record, usage = self._answer_line(line, chat)
            if usage is None:
                failed.append(record)
                continue
            output.append(record)
            tokens = [tokens[0] + usage[0], tokens[1] + usage[1]]
        for key, records in (("output_file_id", output), ("error_file_id", failed)):
            if records:
                data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
                name = f"{batch['id']}_{key.split('_')[0]}.jsonl"
                batch[key] = self._add_file(data.encode("utf-8"), name, "batch_output")["id"]
        batch.update(
            status="completed", in_progress_at=batch["in_progress_at"] or now,
            finalizing_at=now, completed_at=now,
            request_counts={"total": len(output) + len(failed), "completed": len(output),
                            "failed": len(failed)},
            usage={"input_tokens": tokens[0], "input_tokens_details": {"cached_tokens": 0},
                   "output_tokens": tokens[1],
                   "output_tokens_details": {"reasoning_tokens": 0},
                   "total_tokens": sum(tokens)},
        )

    def _answer_line(
        self, line: dict[str, Any], chat: bool
    ) -> tuple[dict[str, Any], tuple[int, int] | None]:
        """One output-file record and its token usage; usage None marks an error-file record."""
        body = line["body"]
        fingerprint = fingerprint_of(body)
        seen = self.counters.see_batch_line(fingerprint)
        seq = next(self._ids)
        record: dict[str, Any] = {"id": f"batch_req_{fingerprint[:16]}{seq:08x}",
                                  "custom_id": line["custom_id"], "response": None,
                                  "error": None}
        request_id = f"req_{fingerprint[:16]}{seq:08x}"
        fault = self.plan.decide(fingerprint, seen)
        if fault == "expired":
            self.counters.batch_outcome(fingerprint, error=fault)
            record["error"] = {"code": "batch_expired", "message": "This request could not be "
                               "executed before the completion window expired."}
            return record, None
        if fault is not None:
            status, message, type_, code = BATCH_LINE_ERRORS[fault]
            self.counters.batch_outcome(fingerprint, error=fault)
            record["response"] = {"status_code": status, "request_id": request_id,
                                  "body": error_body(message, type_, code)}
            return record, None
        prompts, material = validate_request(body, chat)
        response, usage, accounts = build_response(body, chat, prompts, material, fingerprint,
                                                    seq, None, self.options.style)
        self.counters.batch_outcome(fingerprint, usage=usage)
        self.counters.offer(request_id, response, accounts)
        record["response"] = {"status_code": 200, "request_id": request_id, "body": response}
        return record, usage


def _parse_batch_input(
    data: bytes, endpoint: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The lines of a batch input file, and OpenAI-shaped errors for the lines that are bad."""
    lines: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    models: set[str] = set()

    def bad(number: int, code: str, message: str) -> None:
        errors.append({"code": code, "message": message, "line": number, "param": None})

    for number, text in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
        if not text.strip():
            continue
        try:
            line = json.loads(text)
        except json.JSONDecodeError:
            bad(number, "invalid_json_line", "This line is not valid JSON.")
            continue
        if not isinstance(line, dict) or not isinstance(line.get("body"), dict):
            bad(number, "invalid_request", "Each line needs custom_id, method, url and body.")
            continue
        custom_id = line.get("custom_id")
        if not isinstance(custom_id, str) or not custom_id or custom_id in seen:
            bad(number, "duplicate_custom_id", "custom_id must be a unique non-empty string.")
            continue
        if line.get("method") != "POST" or line.get("url") != endpoint:
            bad(number, "mismatched_endpoint", f"method must be POST and url {endpoint}.")
            continue
        try:
            validate_request(line["body"], endpoint == "/v1/chat/completions")
        except APIError as err:
            bad(number, "invalid_request", err.message)
            continue
        seen.add(custom_id)
        models.add(line["body"]["model"])
        lines.append(line)
    if len(models) > 1:
        bad(0, "mismatched_model", "All lines of a batch must use the same model.")
    if not lines and not errors:
        bad(0, "empty_file", "The input file has no requests.")
    return lines, errors
