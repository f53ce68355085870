import sys

from a3lign_research.cli import main

sys.exit(main())
