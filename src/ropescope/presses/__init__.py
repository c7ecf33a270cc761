"""KV-cache compression that knows RoPE's geometry (in progress): the press API (``base``: a frozen dataclass
per press, ``with press(model, p):`` hooks installed and removed), the exact re-rotation of cached keys
(``rerotation``), StreamingLLM (``streaming``), SnapKV and expected attention (``scored``). TriAttention, DapQ and
``ropescope compress`` are to come."""
