"""Training the course's tiny Qwen2-VL (issue 12): data, recipe, loop, evaluation, the shipped model.

- ``data.py``: the synthetic shapes / videos and their questions (the data contract).
- ``vocab.py``: the real Qwen2 tokenizer outside, a trimmed vocabulary inside.
- ``course.py``: the tiny config, the model over local ids, batches and the answer-only loss.
- ``recipe.py``: the paper's stages adapted, the freeze helper, LoRA through peft.
- ``loop.py``: training (resumable per stage, tqdm, torchrun DDP on gloo).
- ``evaluate.py``: held-out scores and ``ask``.
- ``shipped.py``: ``load_course_model`` (the weights inside the package).
"""
