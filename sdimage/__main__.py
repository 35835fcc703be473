import sys

import os

# The application (not the library) quiets third-party import chatter before transformers / diffusers load.
for _k, _v in (("TRANSFORMERS_VERBOSITY", "error"), ("DIFFUSERS_VERBOSITY", "error"),
               ("HF_HUB_DISABLE_PROGRESS_BARS", "1"), ("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")):
    os.environ.setdefault(_k, _v)

from .cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
