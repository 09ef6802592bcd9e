"""``rait run``: the plan that chains the stages (:mod:`rait.run.pipeline`), the stages that provide each artifact kind
a method needs (:mod:`rait.run.providers`), and the run-level results written at the end: ``results.json``
(:mod:`rait.run.aggregate`), ``diagnostics.json`` (:mod:`rait.run.diagnostics`) and offline re-scoring
(:mod:`rait.run.rescore`)."""
