"""The course harness: what makes the lessons and the proofs, beside the model core.

Nothing in the core (``qwenvl_study/*.py``, ``family/``) imports from here; everything here may
import the core. The pieces:

- ``reference``: the transformers and qwen-vl-utils adapters — the reference counterpart of each of
  our objects, built from the same config and weights (``from qwenvl_study.course import reference
  as ref``). A reference package that is not installed raises ``reference.ReferenceUnavailable``.
- ``reference_successors``: the same for lesson 13's successors (Qwen2.5-VL, Qwen3-VL).
- ``checks``: each parity check written once — it builds both sides, compares them and returns a
  ``Check`` (``name, ours, reference, max_abs_error, ok``, tolerance, details); the tests assert on
  it, the tour prints it, the notebooks show it.
- ``figures``: the lessons' figures, one module per lesson in course order (``lesson01_resolution``
  … ``lesson10_clip``, ``lesson13_successors``; shared style in ``_style``), every name re-exported
  (``from qwenvl_study.course import figures as viz``).
- ``tour``: the course's key facts computed live, ✔/✘ against the reference (``qwenvl-study tour``,
  ``make demo``); a reference that is not installed is a "not checked" line.
- ``env``: the notebook preamble (versions, device, what a run skips and why) and ``measure``.
- ``samples``: the shipped sample media (``sample.png``, ``sample.mp4``, ``sample.gif``) and their
  known objects, sizes and frame counts.
"""
