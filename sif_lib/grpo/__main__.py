"""``python -m sif_lib.grpo``: what ``accelerate launch`` runs on every training process."""

import sys

from sif_lib.grpo.launch import main

sys.exit(main())
