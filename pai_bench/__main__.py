import sys

from pai_bench.cli import main
from pai_bench.fake_cuda import from_environment

from_environment()  # tests only: PAI_BENCH_FAKE_CUDA=1 runs the CLI under pai_bench.fake_cuda
sys.exit(main())
