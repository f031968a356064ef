"""Job running code of the saltant worker (the server names its task here)."""

from __future__ import absolute_import, division, print_function, unicode_literals
