"""Helper modules the tests share (no tests here): importable as `helpers.<name>` because pytest
puts tests/ on sys.path."""
