import sys

from phosphene.cli import main

sys.exit(main())
