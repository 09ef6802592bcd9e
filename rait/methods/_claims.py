"""The papers' claims that ``bench/quality.py`` checks a run against, by registered method name (so that the
benchmark names no method itself).

Example:
    >>> from rait.methods._claims import THS_ORDER
    >>> len(THS_ORDER)
    3
"""

#: THS ordering the GRAIT paper (arXiv 2502.05911) reports: GRAIT >= CRaFT >= Cor-RAIT
THS_ORDER = ("grait", "craft", "cor_rait")

#: GRAIT against CRaFT: the GRAIT paper says it cuts wrong answers with less over-refusal
PAIR = ("grait", "craft")

#: the vanilla baseline that the refusal-aware methods should beat on P_w (both papers)
VANILLA = "van"
