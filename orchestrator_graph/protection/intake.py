"""Where data comes into a run: the request and the plan's task inputs are checked against the
policy (refused kinds stop the run before any work), the plan's classification is checked and
written on its tasks, and what was found and checked is recorded for the compliance report."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

from langgraph.store.base import BaseStore, PutOp

from orchestrator_graph.errors import DataPolicyError
from orchestrator_graph.ledger import COMPLIANCE
from orchestrator_graph.models import Plan
from orchestrator_graph.protection.classification import check_plan, classify
from orchestrator_graph.protection.detect import Finding
from orchestrator_graph.protection.persist import compliance_ops
from orchestrator_graph.protection.redact import default_redactor
from orchestrator_graph.sandbox import output_dir

CHECKS = "checks"  # key prefix of policy-check records in the run's compliance namespace


async def admit(request: str, output_folder: str) -> None:
    """Refuse a run at its start: a request holding a kind the policy refuses, or an output
    folder outside the deployment's output root (resolving it touches the disk: a thread)."""
    default_redactor().refuse(request, "the request")
    await asyncio.to_thread(output_dir, output_folder)


async def guard_plan(
    plan: Plan,
    request: str,
    workers: Iterable[Any],
    models: Mapping[str, str],
    store: BaseStore,
    run_id: str,
) -> Plan:
    """The plan, classified, once its inputs and classification pass the policy; the checks
    and the request's and inputs' findings recorded under the run's compliance namespace."""
    redactor = default_redactor()
    ops: list[PutOp] = []
    outcome, detail = "pass", ""
    try:
        for task in plan.tasks:
            if task.inputs:
                text = json.dumps(task.inputs, default=str)
                redactor.refuse(text, f"task {task.id!r} inputs")
        check_plan(plan, workers, models, redactor.policy)
    except DataPolicyError as error:
        outcome, detail = "fail", str(error)
        raise
    finally:
        ops.append(check_op(run_id, "plan", "inputs and classification", outcome, detail))
        found: list[Finding] = []
        redactor.text(request, found)
        ops += compliance_ops(redactor, run_id, "request", found)
        for task in plan.tasks:
            found = []
            redactor.value(task.inputs, found)
            ops += compliance_ops(redactor, run_id, f"plan/{task.id}/inputs", found)
        await asyncio.gather(
            *(store.aput(o.namespace, o.key, o.value or {}, index=False) for o in ops)
        )
    return classify(plan, redactor.policy)


def check_op(run_id: str, name: str, subject: str, outcome: str, detail: str = "") -> PutOp:
    return PutOp(
        (*COMPLIANCE, run_id),
        f"{CHECKS}:{name}",
        {
            "check": name,
            "subject": subject,
            "outcome": outcome,
            "detail": detail,
            "at": time.time(),
        },
        index=False,
    )
