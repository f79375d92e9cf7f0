"""``python -m s3proxy`` is the ``s3proxy`` command."""

import sys

from s3proxy.cli import main

sys.exit(main())
