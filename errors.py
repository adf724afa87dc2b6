"""The one error class a user can fix by changing their input.

Raised by the CLI's checks and by the scenarios for a bad request (a route not in the store, a drill target
that does not exist): the CLI prints its message as one line and exits 2, never a traceback.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input the user can fix; the message says what and, where it can, how."""
