"""rait: Refusal-Aware Instruction Tuning of LLMs (probe -> build -> train -> evaluate).

Example:
    >>> import rait
    >>> rait.__version__
    '0.1.0'
"""

__version__ = "0.1.0"
