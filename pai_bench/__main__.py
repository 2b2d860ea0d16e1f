import sys

from pai_bench.cli.parser import main

sys.exit(main())
