"""Prints garbage, then a malformed port line."""

import sys
import time

print("\x00\x01 some garbage", flush=True)
print("QNTX_PLUGIN_PORT=notaport", flush=True)
sys.stderr.write("still garbage\n")
time.sleep(3600)
