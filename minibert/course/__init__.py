"""The course's own machinery: automatic feedback for exercises, and the exercise notebooks made from solutions.

- ``checks.py``     run a learner's function against the package's on seeded inputs and say what differs
- ``exercises.py``  ``solutions/`` -> ``exercises/`` (``python -m minibert.course.exercises``, ``minibert exercises``)
"""

from .checks import NOT_IMPLEMENTED, check, compare, seeded_tensors
