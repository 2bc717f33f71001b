"""Power sources. Each reader only reads: counters or power, never arithmetic across samples.

One module per source (rapl.py, model.py, ...), registered in registry.py.
"""
