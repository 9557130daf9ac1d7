"""The course harness: what makes the lessons and the proofs, beside the model core.

Nothing in the core (``qwenvl_study/*.py``, ``family/``) imports from here. Here live the transformers
and qwen-vl-utils adapters (``reference``), the parity checks written once (``checks``), the figures
by lesson (``figures``), the tour behind ``make demo`` (``tour``), the notebook preamble (``env``)
and the shipped sample media (``samples``).
"""
