"""QA data: the :class:`QAItem` schema and the dataset loaders.

Example:
    >>> from rait.data import FORMATS, parse_spec
    >>> parse_spec("mmlu:data/mmlu?split=val")
    ('mmlu', 'data/mmlu', {'split': 'val'})
    >>> sorted(FORMATS)
    ['arc', 'builtin', 'hf', 'jsonl', 'mmlu', 'nq', 'triviaqa']
"""

from rait.data.loaders import FORMATS, LoadReport, builtin_dir, check_item, load, load_with_report, parse_spec
from rait.data.schema import LETTERS, QAItem

__all__ = ["FORMATS", "LETTERS", "LoadReport", "QAItem", "builtin_dir", "check_item", "load", "load_with_report",
           "parse_spec"]
