"""Train gan-colorize models: ``python train.py --config configs/unet_gan.yaml`` or, for several GPUs,
``accelerate launch --multi_gpu --num_processes 8 train.py --config configs/unet_gan.yaml``.

Only the command line lives here; the loop is ``gan_colorize/training/loop.py``.
"""

import argparse
import sys

from gan_colorize.cli import run_handler
from gan_colorize.commands import train

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=train.HELP)
    train.add_arguments(parser)
    sys.exit(run_handler(train.run, parser.parse_args(), die_of_signal=True))
