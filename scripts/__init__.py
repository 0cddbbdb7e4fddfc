"""Developer scripts (`python -m scripts.<name>` from the repository root). The snapshot tests import
`scripts.screenshots` for its scenes and stable data (pytest puts the repository root on sys.path)."""
