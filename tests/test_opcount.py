"""OpCount (tests/support/opcount.py): dispatched ATen ops and host synchronisations, counted on a
hand-made example whose ops and syncs are known."""

import torch

from opcount import OpCount


def test_ops_are_counted_one_per_aten_call_backward_included():
    w = torch.ones(3, requires_grad=True)
    x = torch.arange(3.0)
    with OpCount() as c:
        y = (w * x).sum()  # mul, sum
        y.backward()  # the seed grad (ones_like), sum's backward (expand), mul's backward (mul)
    assert c.by_op["mul"] >= 2 and c.by_op["sum"] == 1 and c.by_op["ones_like"] == 1
    assert c.ops == sum(c.by_op.values()) and c.ops >= 5
    assert c.syncs == 0
    assert torch.equal(w.grad, x)  # the counted code computed what it would without the count


def test_a_foreach_op_is_one_op_and_a_python_loop_is_one_per_tensor():
    ts = [torch.ones(2) for _ in range(5)]
    with OpCount() as fused:
        torch._foreach_mul_(ts, 2.0)
    with OpCount() as loop:
        for t in ts:
            t.mul_(2.0)
    assert (fused.ops, loop.ops) == (1, 5)
    assert all(torch.equal(t, torch.full((2,), 4.0)) for t in ts)


def test_every_kind_of_host_read_is_a_sync_and_names_its_line():
    t = torch.tensor([1.0, 2.0])
    with OpCount() as c:
        t.sum().item()
        bool(t.sum() > 0)
        float(t[0])
        int(t[1])
        [0, 1][torch.tensor(1)]
        t.tolist()
        t.numpy()
        t.cpu()
        t[t > 1]  # a boolean mask: the output's size is known only once the data are
        torch.nonzero(t)
    kinds = [s.split(" at ")[0] for s in c.sync_sites]
    assert kinds == ["_local_scalar_dense"] * 5 + ["tolist", "numpy", "cpu", "index", "nonzero"]
    assert c.syncs == 10
    assert all("test_opcount.py:" in s for s in c.sync_sites), c.sync_sites
    assert "t.tolist()" in c.sync_sites[5]


def test_device_side_work_and_cpu_moves_of_cpu_tensors_are_no_sync():
    t = torch.tensor([1.0, -2.0])
    with OpCount() as c:
        acc = torch.zeros((), dtype=torch.float64)
        acc.add_(t.sum(), alpha=4)  # accumulating on the device: no read
        t.to("cpu")  # already on the CPU: no copy back
        torch.where(t > 0, t, 0.0)  # a mask used as data, not as an index
        t[torch.tensor([1])]  # integer indices: the output size is the index's
    assert c.syncs == 0, c.sync_sites
    assert c.ops >= 5
    assert float(acc) == -4.0
