import sys

from d1bench.cli import main

sys.exit(main())
