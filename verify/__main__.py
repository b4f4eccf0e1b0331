"""``python -m verify`` is the ``pgverify`` command."""
import sys

from verify.cli import main

sys.exit(main())
