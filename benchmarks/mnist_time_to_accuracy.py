"""End to end on MNIST: wall time to reach 98% test accuracy, chainrule vs PyTorch (CPU).

Same architecture (784-256-128-10, ReLU, softmax + cross-entropy), same hyper-parameters (SGD,
lr 0.05, momentum 0.9, batch 64, shuffled every epoch), same float32 data scaled to [0, 1].
After every epoch both evaluate the 10,000 test images; the clock counts training and those
evaluations, and stops at the first epoch whose test accuracy is >= the target.
Peak RSS of this process is printed at the end (MNIST as float32 is 188 MB).

    python benchmarks/mnist_time_to_accuracy.py --data /path/to/mnist [--threads 1]
"""

import argparse
import resource
import time

import numpy as np

ARCH = [784, 256, 128, 10]


def run_chainrule(X, y, Xt, yt, args):
    import chainrule as cr

    cr.set_num_threads(args.threads)
    model = cr.Sequential([cr.Dense(a, b) for a, b in zip(ARCH, ARCH[1:])], seed=args.seed,
                          optimizer=cr.optimizers.SGD(lr=args.lr, momentum=0.9))
    start = time.perf_counter()
    for epoch in range(1, args.max_epochs + 1):
        model.fit(X, y, epochs=1, batch_size=args.batch, verbose=0)
        acc = model.evaluate(Xt, yt)["accuracy"]
        if acc >= args.target:
            return time.perf_counter() - start, epoch, acc
    return float("nan"), args.max_epochs, acc


def run_torch(X, y, Xt, yt, args):
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    mods = []
    for i, (a, b) in enumerate(zip(ARCH, ARCH[1:])):
        mods.append(torch.nn.Linear(a, b))
        if i < len(ARCH) - 2:
            mods.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*mods)
    opt = torch.optim.SGD(net.parameters(), lr=args.lr, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    tx, ty = torch.from_numpy(X), torch.from_numpy(y.astype(np.int64))
    txt, tyt = torch.from_numpy(Xt), torch.from_numpy(yt.astype(np.int64))
    gen = torch.Generator().manual_seed(args.seed)
    start = time.perf_counter()
    for epoch in range(1, args.max_epochs + 1):
        net.train()
        order = torch.randperm(tx.shape[0], generator=gen)
        for s in range(0, tx.shape[0], args.batch):
            idx = order[s:s + args.batch]
            opt.zero_grad()
            loss_fn(net(tx[idx]), ty[idx]).backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            acc = (net(txt).argmax(1) == tyt).float().mean().item()
        if acc >= args.target:
            return time.perf_counter() - start, epoch, acc
    return float("nan"), args.max_epochs, acc


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="directory with the four MNIST IDX files")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--target", type=float, default=0.98)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--max-epochs", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--libs", default="chainrule,torch")
    args = p.parse_args()

    import chainrule as cr

    (X, y), (Xt, yt) = cr.datasets.load_mnist(args.data)
    X, Xt = np.ascontiguousarray(X, np.float32), np.ascontiguousarray(Xt, np.float32)
    if X.max() > 1.5:
        X, Xt = X / 255, Xt / 255
    y, yt = y.astype(np.int32), yt.astype(np.int32)
    print(f"MNIST {X.shape} float32 ({X.nbytes / 2**20:.0f} MiB), target {args.target:.0%}, "
          f"784-256-128-10 SGD lr {args.lr} momentum 0.9 batch {args.batch}, "
          f"{args.threads} thread(s)")
    print("| library | wall time to target (s) | epochs | test accuracy |")
    print("|---|---|---|---|")
    for lib in args.libs.split(","):
        run = run_chainrule if lib == "chainrule" else run_torch
        secs, epochs, acc = run(X, y, Xt, yt, args)
        print(f"| {lib} | {secs:.2f} | {epochs} | {acc:.4f} |", flush=True)
    print(f"\npeak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}"
          " MiB (includes torch when run)")


if __name__ == "__main__":
    main()
