"""Studies: one action that trains the same data under several strategies, and says which won.

The question users come with is "for my data, which strategy, and how many frozen layers?". A study
answers it by training one dataset and one backbone, with the same budget (epochs, batch size,
learning rate) and seed, under every strategy worth comparing (`plan`):

- training from scratch (random weights: what pretraining buys);
- transfer learning (the whole base frozen, only the head learns);
- fine-tuning at three frozen depths, on block boundaries spread over the top half of the base
  (`auto_depths`), so no residual unit or bottleneck is split between frozen and learning;
- the two-phase recipe at the middle depth: the head first on a frozen base, then fine-tuning at a
  low learning rate. It spends the same epochs as the others, split between its phases;

and, as an option, each of them on 10, 25, 50 and 100 % of each class's training images (the same
validation set), which shows on the user's own data whether pretrained features win most when data
is scarce (`RunSpec.train_fraction`).

Every member is a normal run: its own folder, live charts, Stop and place in the queue. The study is
`workspace/studies/<id>/study.json` (format 1): the options, and each member with its run's id.
Its result (`result`) is read from the members' run folders whenever it is asked for: the
majority-class baseline, the winner (the best validation accuracy, a tie going to the cheaper), and
a verdict in words (`verdict`).

No work is done twice: the feature cache (`tlcore.features`) is keyed by dataset, backbone, cut and
the frozen weights, and every member has the same seed, so members that freeze the same layers share
one feature pass, whichever trains first (the two-phase member's head phase reuses transfer
learning's, its fine-tuning phase the middle depth's), and a member on part of the data takes its rows
from the whole dataset's entry. A study makes one pass per distinct cut.
"""

from tlcore.study.lifecycle import list_studies, load_study, start, stop, study_of, train_in_foreground
from tlcore.study.members import (
    AUTO_DEPTHS,
    DATA_EFFICIENCY_FRACTIONS,
    SAME_TIME,
    STUDY_FILE,
    STUDY_FORMAT,
    Member,
    Study,
    StudyOptions,
    auto_depths,
    base_structure,
    member_spec,
    percent,
    plan,
    share,
)
from tlcore.study.outcome import CANCELLED, MISSING, PENDING, MemberResult, StudyResult, result, verdict

__all__ = [
    "AUTO_DEPTHS",
    "CANCELLED",
    "DATA_EFFICIENCY_FRACTIONS",
    "MISSING",
    "PENDING",
    "SAME_TIME",
    "STUDY_FILE",
    "STUDY_FORMAT",
    "Member",
    "MemberResult",
    "Study",
    "StudyOptions",
    "StudyResult",
    "auto_depths",
    "base_structure",
    "list_studies",
    "load_study",
    "member_spec",
    "percent",
    "plan",
    "result",
    "share",
    "start",
    "stop",
    "study_of",
    "train_in_foreground",
    "verdict",
]
