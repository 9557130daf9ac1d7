"""Lesson 11 — the course model (``qwenvl_study.train``): its grounding answers drawn on new images."""

from __future__ import annotations

from typing import Sequence

from ._style import _plt as plt

__all__ = ["draw_course_answers"]


def draw_course_answers(samples: Sequence, answers: Sequence[str], columns: int = 4):
    """Held-out "Find the ..." questions: the true box (green) and the model's box (red, dashed, from
    ``parse_grounding`` of its answer, mapped back to pixels), the IoU in each title."""
    from matplotlib.patches import Rectangle

    from ...grounding import from_normalized
    from ...train.evaluate import answer_boxes, answer_iou

    rows = max(1, -(-len(samples) // columns))
    fig, axes = plt().subplots(rows, columns, figsize=(3.0 * columns, 3.1 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, s, a in zip(axes.flat, samples, answers):
        ax.imshow(s.media)
        x1, y1, x2, y2 = s.target.box
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec="tab:green", lw=2, label="truth"))
        boxes = answer_boxes(a)
        if boxes:
            px1, py1, px2, py2 = from_normalized(boxes[0].box, s.scene.size)
            ax.add_patch(Rectangle((px1, py1), px2 - px1, py2 - py1, fill=False, ec="tab:red", lw=2, ls="--",
                                   label="model"))
        ax.set_title(f"{s.question[9:-1]}\nIoU {answer_iou(s, a):.2f}", fontsize=9)
    handles = [Rectangle((0, 0), 1, 1, fill=False, ec=c, ls=ls, lw=2) for c, ls in (("tab:green", "-"), ("tab:red", "--"))]
    fig.legend(handles, ["true box", "the model's box"], loc="lower center", ncol=2, fontsize=9, frameon=False)
    fig.suptitle("The course model grounds shapes in images it never saw (held-out set)", fontsize=11)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig
