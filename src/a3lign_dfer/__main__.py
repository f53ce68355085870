import sys

from a3lign_dfer.cli import main

sys.exit(main())
