"""Predicates: a task that refuses suspended tenants, and a report gated by a switch, the
day of the week and a custom op.

Run it: python examples/predicates.py
"""

import os
import tempfile

from taskito import PredicateRejectedError, Queue
from taskito.predicates import Cancel, Predicate, PredicateContext, env_var_truthy, format_predicate, parse


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        queue = Queue(db_path=os.path.join(tmp, "tasks.db"))

        def tenant_allowed(ctx: PredicateContext) -> object:
            if ctx.kwargs.get("tenant") in ctx.extras["suspended"]:
                return Cancel("tenant suspended")
            return True

        @queue.task(predicate=tenant_allowed, predicate_extras={"suspended": {"globex"}})
        def send_invoice(tenant: str) -> str:
            return f"invoice sent to {tenant}"

        job = send_invoice.delay(tenant="acme")
        try:
            send_invoice.delay(tenant="globex")
        except PredicateRejectedError as exc:
            print(f"rejected: {exc.reason}")

        # A custom op: usable in the serialized and text forms once registered.
        @queue.register_predicate("tenant_is")
        class TenantIs(Predicate):
            def __init__(self, tenant: str) -> None:
                self.tenant = tenant

            def evaluate(self, ctx: PredicateContext) -> bool:
                return ctx.kwargs.get("tenant") == self.tenant

            def to_dict(self) -> dict:
                return {"op": self.OP, "tenant": self.tenant}

            @classmethod
            def _from_kwargs(cls, kwargs: dict) -> Predicate:
                return cls(**kwargs)

        # The text form: read from configuration, checked at startup.
        rule = parse("env_var_truthy(name='REPORTS_ON') & !is_weekend() & tenant_is(tenant='acme')")
        print("rule:", format_predicate(rule))

        @queue.task(predicate=rule, on_false="cancel")
        def nightly_report(tenant: str) -> str:
            return f"report built for {tenant}"

        os.environ["REPORTS_ON"] = "0"
        try:
            nightly_report.delay(tenant="acme")
        except PredicateRejectedError:
            print("reports are switched off")
        print("listed:", sorted(queue.list_predicates()) == sorted([send_invoice.name, nightly_report.name]))

        queue.run_worker(run_once=True)
        print(job.result(timeout=10))
        print("stats:", queue.predicate_stats())
        assert env_var_truthy("REPORTS_ON").to_dict() == {"op": "env_var_truthy", "name": "REPORTS_ON"}
        queue.close()


if __name__ == "__main__":
    main()
