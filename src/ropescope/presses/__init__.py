"""KV-cache compression that knows RoPE's geometry (issue in progress): today, the re-rotation every press that
moves keys uses (:mod:`ropescope.presses.rerotation`)."""
