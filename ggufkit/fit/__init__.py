"""`ggufkit fit`: which quantization of a model suits this machine, measured.

candidates.py (the ladder, predicted sizes, the quantized files in the content-keyed cache) ->
measure.py (memory and speed in a fresh child, quality in one `eval` pass) -> choose.py (budgets, the
choice, reasons, the Pareto front); job.py runs them in turn with store.py caching every measurement;
result.py holds what comes out, report.py and plot.py render it.
"""
