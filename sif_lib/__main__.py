import sys

from sif_lib.cli import main

sys.exit(main())
