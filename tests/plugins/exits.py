"""Exits at once, every time."""

import sys

sys.stderr.write("fatal: cannot open frobnicator\n")
sys.exit(3)
