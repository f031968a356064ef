"""The saltant task and the code that runs jobs for it."""

from __future__ import absolute_import, division, print_function, unicode_literals
