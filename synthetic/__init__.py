"""Synthetic inputs for the tests and benchmarks, not part of the installed library: aggregates with
InceptionV1's shape (:mod:`aggregates`) and a GraphDef with InceptionV1's exact structure and random
weights (:mod:`inception_v1`; ``python -m synthetic --out=DIR`` writes it)."""
