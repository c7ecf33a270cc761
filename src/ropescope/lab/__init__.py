"""The lab: train small models with every encoding and measure length generalisation (``ropescope lab``).

``spec`` reads a sweep (TOML, or a shipped preset) and expands it into runs; ``tasks`` generates the data from
a seed; ``runs`` trains and evaluates one run (and the training-free RoPE fixes); ``sweep`` runs them on the
local or the Ray engine and writes the results. Needs the torch extra (Ray for ``--engine ray``).
"""
