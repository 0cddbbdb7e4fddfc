"""The bundled `python` plugin: runs Python handler scripts in child processes.

Kept import-free so that the script runner child (`runner.py`, run by path) starts
without loading gRPC.
"""
