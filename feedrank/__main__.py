import sys

from feedrank.cli import main

sys.exit(main())
