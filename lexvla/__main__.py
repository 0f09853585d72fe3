import sys

from lexvla.cli import main

sys.exit(main())
