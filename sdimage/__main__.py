import sys

from cliutil import quiet_third_party

# The application (not the library) quiets third-party import chatter before transformers / diffusers load.
quiet_third_party()

from .cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
