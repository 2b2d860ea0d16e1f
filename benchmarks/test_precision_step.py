"""One training step in float32 and in bfloat16 autocast, on this CPU: the measurement behind
``precision="auto"`` (``pai_bench/precision.py``). The CPU's capability is printed beside the
ratio (bf16 is about 1.3-1.75x faster where the CPU has AVX512-BF16 or AMX, about 10x slower where
it is emulated, e.g. AVX2 only).

Run: ``pytest benchmarks/test_precision_step.py --benchmark-only -s``.
"""

import pytest
import torch
import torch.nn.functional as F

from pai_bench.sweeps.experiments import CPU_RUN
from pai_bench.models import create_model
from pai_bench.precision import cpu_capability, resolve_precision
from pai_bench.recipes import CIFAR
from pai_bench.training.train import autocast, make_optimizer

CPU = torch.device("cpu")


def setup(width, batch, precision):
    model = create_model("cifar_resnet_20", num_classes=10, input_shape=(3, 32, 32), seed=0,
                         width=width)
    g = torch.Generator().manual_seed(0)
    opt = make_optimizer(model, CIFAR)
    x = torch.randn(batch, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (batch,), generator=g)
    model.train()

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast(CPU, precision):
            loss = F.cross_entropy(model(x).float(), y)
        loss.backward()
        opt.step()
    return step


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("shape", ["cpu_preset", "paper"])  # width 8 batch 32; width 16 batch 128
def test_training_step_precision(benchmark, shape, precision):
    width, batch = (CPU_RUN["width"], CPU_RUN["batch_size"]) if shape == "cpu_preset" else (None, 128)
    torch.set_num_threads(1)
    step = setup(width, batch, precision)
    step()
    benchmark.extra_info["cpu"] = cpu_capability()
    benchmark.extra_info["auto"] = resolve_precision("auto", CPU)
    if precision == "bf16":
        benchmark.extra_info["ratio_to"] = f"test_training_step_precision[{shape}-fp32]"
    print(f"\n[{shape} {precision}] CPU capability: {cpu_capability()}; "
          f"precision auto here: {resolve_precision('auto', CPU)}")
    benchmark.pedantic(step, rounds=10, iterations=1, warmup_rounds=1)
