"""A dry run's soft asserts (scripts/dry_run.py; loaded in each kernel by dry_run_startup.py).

A dry run trains every model for a few steps only, so a lesson's claims about trained models do not
hold there and are not what it checks: it looks for cells that crash. Before each cell runs, every
``assert`` in it becomes "if not <test>: record it and go on". A record (the assert and its message)
is one JSON object per line in the run's log. Asserts inside the lab's package are not rewritten:
they still raise, and the run reports them.
"""
from __future__ import annotations

import ast
import json
import traceback

RECORD_NAME = "__afl_dry_run_assert_failed__"


class SoftAsserts(ast.NodeTransformer):
    """``assert test, msg`` becomes ``if not test: RECORD_NAME("assert test", lambda: msg)``.

    The message stays lazy, as in an assert: it is built only when the test fails."""

    def visit_Assert(self, node: ast.Assert) -> ast.If:
        self.generic_visit(node)
        no_args = ast.arguments(posonlyargs=[], args=[], kwonlyargs=[], kw_defaults=[], defaults=[])
        message = ast.Lambda(args=no_args, body=node.msg if node.msg is not None else ast.Constant(None))
        record = ast.Call(func=ast.Name(RECORD_NAME, ast.Load()),
                          args=[ast.Constant("assert " + ast.unparse(node.test)), message], keywords=[])
        soft = ast.If(test=ast.UnaryOp(ast.Not(), node.test), body=[ast.Expr(record)], orelse=[])
        return ast.fix_missing_locations(ast.copy_location(soft, node))


def soften(source: str) -> str:
    """``source`` with its asserts rewritten (what the kernel runs; for reading and for the tests)."""
    return ast.unparse(SoftAsserts().visit(ast.parse(source)))


def recorder(log_path: str):
    """The function a rewritten assert calls when its test fails: appends a record to ``log_path``."""
    def record(text: str, message) -> None:
        try:
            said = message()
        except Exception:  # a message that cannot be built is still a failed assert
            said = "(its message raised " + traceback.format_exc(limit=0).strip() + ")"
        with open(log_path, "a", encoding="utf-8") as log:
            log.write(json.dumps({"assert": text[:300], "message": None if said is None else str(said)[:300]}) + "\n")
    return record


def install(shell, log_path: str) -> None:
    """Soften every later cell of the IPython ``shell``; failed asserts go to ``log_path``."""
    shell.user_ns[RECORD_NAME] = recorder(log_path)
    shell.ast_transformers.append(SoftAsserts())
