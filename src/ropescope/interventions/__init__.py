"""Interventions on attention that remove position bias: PINE (:mod:`.pine`) and ACT sink calibration
(:mod:`.act`), installed as registered transformers attention functions; the retrieval task that measures the
bias (:mod:`.retrieval`) and the runs (:mod:`.run`)."""
