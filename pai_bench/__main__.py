import sys

from pai_bench.cli import main

sys.exit(main())
