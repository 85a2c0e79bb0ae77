"""Evaluation: the protocol (``protocol.py``: what is resized, what the model sees, how the
prediction is assembled, the evaluation sets) and the scoring of runs and outside methods
(``evaluate.py``, writing ``RUN/eval/<dataset>/metrics.json``). ``eval/README.md`` explains both.
"""

from gan_colorize.evaluation.evaluate import EvaluationError, evaluate_folders, evaluate_run  # noqa: F401
from gan_colorize.evaluation.protocol import (  # noqa: F401
    EvalSet,
    EvalSetError,
    colorize_batch,
    describe_protocol,
    greyscale_batch,
    load_eval_set,
    protocol_markdown,
)
