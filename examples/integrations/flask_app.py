"""A Flask app whose queue comes from its config, with job status routes under ``/tasks``
(``flask --app examples.integrations.flask_app taskito worker`` runs a worker).

Run as a script, it runs a worker on a thread beside the app, enqueues a job and reads its
result over the app's routes, then stops the worker.
"""

import tempfile

from flask import Flask

from taskito.contrib.flask import Taskito

app = Flask(__name__)
app.config["TASKITO_DB_PATH"] = f"{tempfile.mkdtemp()}/tasks.db"
taskito = Taskito(app)
app.register_blueprint(taskito.blueprint(), url_prefix="/tasks")


@taskito.queue.task()
def greet(name: str) -> str:
    return f"hello {name}"


@app.post("/greet/<name>")
def create(name: str) -> dict:
    return {"job_id": greet.delay(name).id}


if __name__ == "__main__":
    taskito.start_worker()
    client = app.test_client()
    job_id = client.post("/greet/ann").get_json()["job_id"]
    print(client.get(f"/tasks/jobs/{job_id}/result?timeout=10").get_json())
    taskito.stop_worker()
