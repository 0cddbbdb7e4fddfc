"""Never prints its port."""

import time

print("starting up, honest", flush=True)
time.sleep(3600)
