import sys

from gan_colorize.cli import main

sys.exit(main())
