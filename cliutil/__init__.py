"""What every command line of this project shares: one-line errors with exit code 2, number / path checks done
before any work starts, and atomic output that keeps the usual file mode.

Library code raises :class:`BadInput` (or a subclass); :func:`run_cli` turns it into ``error: ...`` on stderr and
exit code 2. ``theory``, ``toy`` and ``sdimage`` all use it, so the rule is written once.
"""
from .atomic import atomic_path, write_bytes_atomic, write_json_atomic, write_text_atomic
from .checks import (MAX_SEED, BadInput, check_choice, check_int, check_new_file, check_number, check_writable_dir,
                     one_line)
from .held_warnings import hold_warnings, warning_line, work_starts
from .main import OneLineParser, quiet_third_party, quiet_third_party_logs, run_cli

__all__ = ["BadInput", "one_line", "check_number", "check_int", "check_choice", "check_writable_dir", "check_new_file",
           "MAX_SEED", "atomic_path", "write_bytes_atomic", "write_text_atomic", "write_json_atomic", "OneLineParser",
           "run_cli", "quiet_third_party", "quiet_third_party_logs", "hold_warnings", "warning_line",
           "work_starts"]
