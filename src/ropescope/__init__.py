"""ropescope: will this model's positional encoding hold at the context length you want?"""

__version__ = "0.1.0"
