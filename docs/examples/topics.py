from taskito import Queue

queue = Queue(db_path="topics.db")


@queue.subscribe("user.created")
@queue.task(queue="mail")
def send_welcome(user_id):
    return f"welcome {user_id}"


@queue.task()
def add_to_crm(user_id):
    return f"crm {user_id}"


queue.subscribe("user.created", add_to_crm)
jobs = queue.publish("user.created", (42,))
queue.run_worker(queues=["mail", "default"], run_once=True)
print([j.result() for j in jobs])   # ['welcome 42', 'crm 42']
