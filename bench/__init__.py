"""Benchmark study of sparseopt: ``python -m bench`` (see ``bench/study.py``)."""
