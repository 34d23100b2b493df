from taskito import Queue

queue = Queue(db_path="pages.db")
for n in range(5):
    queue.enqueue("bill", (n,), metadata={"tenant": "acme" if n % 2 else "globex"})

page = queue.list_jobs_after(status="pending", limit=2)      # newest first
seen = list(page)
while page.next_cursor is not None:
    page = queue.list_jobs_after(status="pending", limit=2, after=page.next_cursor)
    seen += page
print(len(seen))                                              # 5, none skipped or repeated
letters = queue.dead_letters_after(limit=10)                 # a Page of dicts: none here
print(len(letters), letters.next_cursor)                     # 0 None

page = queue.list_jobs_filtered_after(metadata_like='"tenant": "acme"', limit=1)
while page.next_cursor is not None:
    page = queue.list_jobs_filtered_after(metadata_like="acme", limit=1, after=page.next_cursor)
print(len(queue.list_jobs_filtered(metadata_like="acme")))   # 2
