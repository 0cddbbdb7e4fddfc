"""The bundled `python` plugin: runs Python handler scripts in child processes.

Kept import-free so that the script runner child (`-m pulse_tui.plugins.python.runner`) starts
without loading gRPC.
"""
