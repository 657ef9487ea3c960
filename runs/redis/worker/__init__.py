"""The reference Redis worker: `manage.py runworker` runs registered tasks
for the runs it takes from the queue, and writes through `runs.services`."""
