"""The Django task backend, the app's commands and admin pages, against real Django and a
worker started by ``manage.py taskito_worker`` in another process."""

import datetime
import json
import os
import subprocess
import sys
from io import StringIO

from asgiref.sync import async_to_sync
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.db import transaction
from django.tasks import TaskResultStatus, task_backends
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
from django.test import TransactionTestCase, override_settings
from django.urls import reverse
from django.utils import timezone

from demo import tasks
from taskito.contrib.django import TaskitoBackend
from taskito.contrib.django.settings import get_queue

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_worker(*extra):
    """``manage.py taskito_worker --run-once`` in a fresh process; returns its output."""
    done = subprocess.run(
        [sys.executable, os.path.join(HERE, "manage.py"), "taskito_worker", "--run-once", *extra],
        capture_output=True, text=True, timeout=120, env=os.environ.copy(), cwd=HERE,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def signals():
    path = os.environ["DEMO_SIGNAL_LOG"]
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f]


class Base(TransactionTestCase):
    def setUp(self):
        os.environ["DEMO_SIGNAL_LOG"] = os.path.join(
            os.environ["DEMO_DIR"], f"signals-{self._testMethodName}"
        )
        queue = get_queue()
        queue.purge_finished(0)
        for job in queue.list_jobs(status="pending", limit=1000):
            queue.cancel_job(job.id)
        queue.purge_finished(0)


class BackendTests(Base):
    def test_store_is_the_one_asked_for(self):
        self.assertEqual(get_queue().backend, os.environ["DEMO_STORE"])

    def test_flags_tell_the_truth(self):
        backend = task_backends["default"]
        self.assertIsInstance(backend, TaskitoBackend)
        self.assertTrue(backend.supports_defer and backend.supports_async_task)
        self.assertTrue(backend.supports_get_result and backend.supports_priority)

    def test_enqueue_run_by_worker_process_and_result_fields(self):
        result = tasks.add.enqueue(2, y=3)
        self.assertEqual(result.status, TaskResultStatus.READY)
        self.assertEqual(result.args, [2])
        self.assertEqual(result.kwargs, {"y": 3})
        self.assertIsNotNone(result.enqueued_at)
        self.assertEqual(get_queue().get_job(result.id).status, "pending")
        out = run_worker()
        self.assertIn("demo.tasks.add", out)
        found = tasks.add.get_result(result.id)
        self.assertEqual(found.status, TaskResultStatus.SUCCESSFUL)
        self.assertEqual(found.return_value, 5)
        self.assertEqual(found.args, [2])
        self.assertEqual(found.kwargs, {"y": 3})
        self.assertEqual(found.errors, [])
        self.assertEqual(len(found.worker_ids), 1)
        self.assertEqual(found.attempts, 1)
        self.assertTrue(found.enqueued_at <= found.started_at <= found.finished_at)
        self.assertEqual(found.last_attempted_at, found.started_at)
        self.assertTrue(timezone.is_aware(found.finished_at))
        self.assertEqual(found.backend, "default")
        result.refresh()
        self.assertEqual(result.status, TaskResultStatus.SUCCESSFUL)
        self.assertEqual(result.return_value, 5)
        # The signals: enqueued here, started and finished in the worker process.
        seen = [
            (s["signal"], s["status"], s["pid"] == os.getpid()) for s in signals() if s["id"] == result.id
        ]
        self.assertEqual(
            seen,
            [("enqueued", "READY", True), ("started", "RUNNING", False), ("finished", "SUCCESSFUL", False)],
        )
        self.assertTrue(all(s["sender"] == "TaskitoBackend" for s in signals()))

    def test_two_worker_processes_run_each_task_once(self):
        results = [tasks.add.enqueue(i, 1) for i in range(20)]
        command = [sys.executable, os.path.join(HERE, "manage.py"), "taskito_worker", "--run-once"]
        procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=os.environ.copy(), cwd=HERE) for _ in range(2)]  # fmt: skip
        outputs = [p.communicate(timeout=120) for p in procs]
        self.assertEqual([p.returncode for p in procs], [0, 0], outputs)
        processed = sum(int(out.split("Processed ")[1].split(" ")[0]) for out, _ in outputs)
        self.assertEqual(processed, 20)
        for i, result in enumerate(results):
            found = tasks.add.get_result(result.id)
            seen = (found.status, found.return_value, found.attempts)
            self.assertEqual(seen, (TaskResultStatus.SUCCESSFUL, i + 1, 1))
        started = [s for s in signals() if s["signal"] == "started"]
        self.assertEqual(sorted(s["id"] for s in started), sorted(r.id for r in results))

    def test_failure_keeps_exception_path_and_traceback(self):
        result = tasks.explode.enqueue("boom")
        run_worker()
        found = tasks.explode.get_result(result.id)
        self.assertEqual(found.status, TaskResultStatus.FAILED)
        self.assertEqual(len(found.errors), 1)
        self.assertEqual(found.errors[0].exception_class_path, "builtins.ValueError")
        self.assertIs(found.errors[0].exception_class, ValueError)
        self.assertIn("ValueError: boom", found.errors[0].traceback)
        self.assertIn("raise ValueError(message)", found.errors[0].traceback)
        with self.assertRaises(ValueError):
            _ = found.return_value
        finished = [s for s in signals() if s["signal"] == "finished"]
        self.assertEqual(finished[-1]["status"], "FAILED")

    def test_context_and_async_tasks(self):
        ctx = tasks.whoami.enqueue("t")
        doubled = async_to_sync(tasks.slow_double.aenqueue)(21)
        run_worker()
        value = tasks.whoami.get_result(ctx.id).return_value
        self.assertEqual(value["id"], ctx.id)
        self.assertEqual(value["attempt"], 1)
        self.assertEqual(value["tag"], "t")
        self.assertEqual(len(value["worker_ids"]), 1)
        found = async_to_sync(tasks.slow_double.aget_result)(doubled.id)
        self.assertEqual(found.return_value, 42)

    def test_using_priority_queue_and_run_after(self):
        later = timezone.now() + datetime.timedelta(hours=1)
        deferred = tasks.add.using(run_after=later).enqueue(1, 1)
        urgent = tasks.urgent.using(priority=7).enqueue("x")
        job = get_queue().get_job(urgent.id).to_dict()
        self.assertEqual((job["queue"], job["priority"]), ("urgent", 7))
        run_worker("--queues", "default,urgent")
        self.assertEqual(tasks.urgent.get_result(urgent.id).return_value, "urgent x")
        waiting = tasks.add.get_result(deferred.id)
        self.assertEqual(waiting.status, TaskResultStatus.READY)
        self.assertIsNotNone(waiting.task.run_after)
        self.assertLess(abs((waiting.task.run_after - later).total_seconds()), 2)
        with self.assertRaises(InvalidTask):
            tasks.add.using(queue_name="nowhere")

    def test_unknown_or_foreign_ids(self):
        with self.assertRaises(TaskResultDoesNotExist):
            task_backends["default"].get_result("no-such-job")
        with self.assertRaises(TaskResultDoesNotExist):
            task_backends["default"].get_result("%")
        # A job of the same queue that is not a Django task is not a TaskResult.
        other = get_queue().enqueue("not.a.django.task", args=(1,))
        with self.assertRaises(TaskResultDoesNotExist):
            task_backends["default"].get_result(other.id)

    def test_tampered_task_name_imports_nothing(self):
        # A row whose metadata claims to be a Django task but names a plain function.
        queue = get_queue()
        claim = {"django": {"backend": "default", "args": ["true"], "kwargs": {}}}
        forged = queue.enqueue("os.system", args=("true",), metadata=claim)
        with self.assertRaises(TaskResultDoesNotExist):
            task_backends["default"].get_result(forged.id)

    def test_system_checks_report_bad_options(self):
        tasks_setting = {"default": {"BACKEND": "taskito.contrib.django.TaskitoBackend",
                                     "OPTIONS": {"db_pth": "x.db"}}}  # fmt: skip
        with override_settings(TASKS=tasks_setting):
            ids = [e.id for e in task_backends["default"].check()]
        self.assertIn("taskito.E001", ids)
        bad_value = {"default": {"BACKEND": "taskito.contrib.django.TaskitoBackend",
                                 "OPTIONS": {"db_path": os.path.join(os.environ["DEMO_DIR"], "b.db"),
                                             "default_retry": -1}}}  # fmt: skip
        with override_settings(TASKS=bad_value):
            from taskito.contrib.django import backend as module

            module._queues.pop("default", None)
            messages = task_backends["default"].check()
            module._queues.pop("default", None)
        self.assertEqual([e.id for e in messages], ["taskito.E004"])
        self.assertIn("default_retry", messages[0].msg)
        with override_settings(TASKITO_ADMIN_PER_PAGE="many"):
            from taskito.contrib.django.checks import check_settings

            self.assertEqual([e.id for e in check_settings()], ["taskito.E101"])


class TransactionTests(Base):
    def test_rollback_leaves_no_job(self):
        before = get_queue().stats()["pending"]
        with self.assertRaises(RuntimeError):
            with transaction.atomic():
                result = tasks.add.enqueue(5, 5)
                raise RuntimeError("roll back")
        self.assertEqual(get_queue().stats()["pending"], before)
        with self.assertRaises(TaskResultDoesNotExist):
            tasks.add.get_result(result.id)
        self.assertFalse([s for s in signals() if s["id"] == result.id])

    def test_commit_stores_the_job_only_then(self):
        with transaction.atomic():
            result = tasks.add.enqueue(20, 22)
            # Not stored yet: a worker in another process finds nothing to run.
            self.assertEqual(get_queue().stats()["pending"], 0)
            self.assertIn("Processed 0 job(s)", run_worker())
            with self.assertRaises(TaskResultDoesNotExist):
                tasks.add.get_result(result.id)
        self.assertEqual(get_queue().stats()["pending"], 1)
        self.assertIsNotNone(result.enqueued_at)
        self.assertEqual([s["signal"] for s in signals() if s["id"] == result.id], ["enqueued"])
        run_worker()
        found = tasks.add.get_result(result.id)
        self.assertEqual(found.id, result.id)
        self.assertEqual(found.return_value, 42)


class CommandTests(Base):
    def test_info(self):
        tasks.add.enqueue(1)
        out = StringIO()
        call_command("taskito_info", stdout=out)
        text = out.getvalue()
        self.assertIn("default", text)
        self.assertRegex(text, r"default\s+1\s+0")

    def test_worker_rejects_bad_queues(self):
        command = [sys.executable, os.path.join(HERE, "manage.py"), "taskito_worker", "--queues", " ,"]
        done = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy(), cwd=HERE)
        self.assertNotEqual(done.returncode, 0)
        self.assertIn("queue", done.stderr.lower())


class ExampleTests(Base):
    def test_docs_example_runs(self):
        example = os.path.join(HERE, "..", "..", "examples", "integrations", "django_tasks.py")
        env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
        done = subprocess.run([sys.executable, example], capture_output=True, text=True, timeout=120, env=env)
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        self.assertIn("SUCCESSFUL welcome mail sent to ann@example.org attempts: 1", done.stdout)


class AdminTests(Base):
    def setUp(self):
        super().setUp()
        self.admin = User.objects.create_superuser("root", "root@example.org", "pw")
        self.staff = User.objects.create_user("staff", "s@example.org", "pw", is_staff=True)

    def test_pages_and_filters(self):
        self.client.force_login(self.admin)
        a = tasks.add.enqueue(1)
        tasks.urgent.enqueue("u")
        page = self.client.get(reverse("admin:taskito_dashboard"))
        self.assertEqual(page.status_code, 200)
        listing = self.client.get(reverse("admin:taskito_jobs"), {"queue": "urgent"})
        self.assertContains(listing, "demo.tasks.urgent")
        self.assertNotContains(listing, "demo.tasks.add")
        detail = self.client.get(reverse("admin:taskito_job_detail", args=[a.id]))
        self.assertContains(detail, a.id)
        self.assertContains(detail, "demo.tasks.add")
        self.assertEqual(self.client.get(reverse("admin:taskito_job_detail", args=["nope"])).status_code, 404)

    def test_dead_letter_retry_needs_permission(self):
        result = tasks.explode.enqueue("dead")
        run_worker()
        dead = get_queue().dead_letters()
        self.assertEqual(len(dead), 1)
        self.client.force_login(self.staff)
        self.assertEqual(self.client.get(reverse("admin:taskito_dead_letters")).status_code, 403)
        self.staff.user_permissions.add(Permission.objects.get(codename="view_jobs"))
        self.staff = User.objects.get(pk=self.staff.pk)
        self.client.force_login(self.staff)
        page = self.client.get(reverse("admin:taskito_dead_letters"))
        self.assertContains(page, dead[0]["id"])
        self.assertNotContains(page, "Retry</button>")
        post = {"action": "retry", "dead_id": dead[0]["id"]}
        self.assertEqual(self.client.post(reverse("admin:taskito_dead_letters"), post).status_code, 403)
        self.client.force_login(self.admin)
        done = self.client.post(reverse("admin:taskito_dead_letters"), post)
        self.assertEqual(done.status_code, 302)
        self.assertEqual(get_queue().dead_letters(), [])
        self.assertEqual(get_queue().stats()["pending"], 1)
        self.assertIsNotNone(result.id)
