"""The course's own machinery: automatic feedback for exercises, the exercise notebooks made from solutions, and the
measurements the notebooks and benchmarks take.

- ``checks.py``     run a learner's function against the package's on seeded inputs and say what differs
- ``exercises.py``  ``solutions/`` -> ``exercises/`` (``python -m minibert.course.exercises``, ``minibert exercises``)
- ``measure.py``    best-of timing, CPU vs wall time, peak memory, thread count, fresh processes, smoothed curves
"""

from .checks import NOT_IMPLEMENTED, check, compare, seeded_tensors
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
