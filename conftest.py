"""Root conftest: its presence puts the repository root on sys.path, so tests import pai_bench."""
