#!/usr/bin/python3
"""Back-propagation peer for scripts/bench/vs_torch.lua: the paper's 784-64-64-64-10 ReLU
network (model "mlp") or the small CNN of blua.experiment.cnn (model "cnn") on MNIST with
PyTorch (Debian python3-torch), Adam, the same batch size, learning rate and cosine schedule
as blua's back-propagation defaults. Prints one line per epoch: 'epoch N seconds S cpu C test T'
(C: the process's CPU seconds of the epoch, all threads).
  torch_peer.py DATA_DIR EPOCHS THREADS [mlp|cnn]"""
import struct
import sys
import time

import numpy as np
import torch


def idx(path):
    with open(path, "rb") as f:
        data = f.read()
    rank = data[3]
    dims = struct.unpack(">" + "I" * rank, data[4:4 + 4 * rank])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


def main():
    root, epochs, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    model = sys.argv[4] if len(sys.argv) > 4 else "mlp"
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    x = torch.tensor(idx(root + "/train-images-idx3-ubyte").reshape(-1, 784), dtype=torch.float32) / 255
    y = torch.tensor(idx(root + "/train-labels-idx1-ubyte"), dtype=torch.long)
    xt = torch.tensor(idx(root + "/t10k-images-idx3-ubyte").reshape(-1, 784), dtype=torch.float32) / 255
    yt = torch.tensor(idx(root + "/t10k-labels-idx1-ubyte"), dtype=torch.long)
    if model == "cnn":
        nn = torch.nn
        net = nn.Sequential(
            nn.Unflatten(1, (1, 28, 28)),
            nn.Conv2d(1, 8, 5, padding=2), nn.ReLU(), nn.AvgPool2d(2),
            nn.Conv2d(8, 16, 5, padding=2), nn.ReLU(), nn.AvgPool2d(2),
            nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
    else:
        net = torch.nn.Sequential(
            torch.nn.Linear(784, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64), torch.nn.ReLU(),
            torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    batch, lr = 128, 4e-3
    steps = epochs * ((len(x) + batch - 1) // batch)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    loss_fn = torch.nn.CrossEntropyLoss()
    for epoch in range(1, epochs + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        perm = torch.randperm(len(x))
        for i in range(0, len(x), batch):
            idxs = perm[i:i + batch]
            opt.zero_grad()
            loss = loss_fn(net(x[idxs]), y[idxs])
            loss.backward()
            opt.step()
            sched.step()
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        with torch.no_grad():
            acc = (net(xt).argmax(1) == yt).float().mean().item()
        print(f"epoch {epoch} seconds {seconds:.4f} cpu {cpu:.4f} test {acc:.4f}", flush=True)


if __name__ == "__main__":
    main()
