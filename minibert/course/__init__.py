"""The course's own machinery: the exercises' checks and hints, the exercise notebooks made from solutions,
grading a class's notebooks, and the measurements the notebooks and benchmarks take.

- ``checks.py``     ``check("04.1", causal_mask)``: run a learner's answer against the package's and say what differs
- ``compare.py``    compare two results and name the item, dtype, shape or position that differs
- ``spec.py``       what an exercise and a concept question are: cases, reference, hints, explanation
- ``chapters/``     each chapter's exercises and questions, keyed by id (``ch04_attention.py`` holds "04.1", ...)
- ``exercises.py``  ``solutions/`` -> ``exercises/`` (``python -m minibert.course.exercises``, ``minibert exercises``)
- ``grade.py``      ``minibert grade``: run learners' notebooks, one verdict per exercise, a gradebook
- ``measure.py``    best-of timing, CPU vs wall time, peak memory, thread count, fresh processes, smoothed curves
"""

from .checks import HELPER_NOT_IMPLEMENTED, NOT_IMPLEMENTED, CheckFailed, check, hint, seeded_tensors, verdict
from .compare import compare
from .measure import (
    Resident,
    Timing,
    Timings,
    best_of,
    fresh_process,
    interleaved,
    load_average,
    num_threads,
    peak_memory,
    peak_resident,
    report,
    smooth,
    steady_clock,
    synchronize,
    timed,
    timings,
)
from .spec import Case, Exercise, Question
