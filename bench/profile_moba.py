# Launches attnc's MoBA kernel (bench/specs/moba.attn) a few times at N = 16384, for
# ncu to time each of its kernels: selection (pool, top-k), tile classes, attention.
#   ncu --metrics gpu__time_duration.sum python3 bench/profile_moba.py
import sys, ctypes, torch
sys.path.insert(0, "bench")
import gpu_vs_torch as g
att = g.Attnc(".device-carry/lib/libattnc-gpu-bench.so")
c = dict(case="moba", N=16384, D=128, B=1, H=16, KV=16)
q, k, v, extra = g.make_inputs(c, torch.device("cuda"), 0)
h, ms, cached = att.compile("bench/specs/moba.attn", "B=1,H=16,S=16384,D=128")
o = torch.empty_like(q)
fn = att.launcher(h, [q, k, v, o], "")
for _ in range(3):
    fn()
torch.cuda.synchronize()
print("ok")
