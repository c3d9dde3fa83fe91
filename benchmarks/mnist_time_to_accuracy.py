"""End to end on MNIST: wall time to reach 98% test accuracy, chainrule vs PyTorch (CPU).

Same architecture (784-256-128-10, ReLU, softmax + cross-entropy), same hyper-parameters (SGD,
lr 0.05, momentum 0.9, batch 64), same float32 data scaled to [0, 1], and the same start:
both libraries get identical initial weights (drawn once with numpy from PyTorch's documented
default for nn.Linear, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for W and b) and see the samples in
the same order (one numpy permutation per epoch, applied to the data before the epoch, outside
the clock, for both). Only their arithmetic differs. After every epoch both evaluate the 10,000
test images; the clock counts training and those evaluations, and stops at the first epoch
whose test accuracy is >= the target. Peak RSS of this process is printed at the end.

    python benchmarks/mnist_time_to_accuracy.py --data /path/to/mnist [--threads 1]
"""

import argparse
import resource
import time

import numpy as np

ARCH = [784, 256, 128, 10]


def initial_weights(seed):
    """[(W (in, out), b (out,))], PyTorch's default distribution for nn.Linear."""
    rng = np.random.default_rng(seed)
    weights = []
    for a, b in zip(ARCH, ARCH[1:]):
        bound = 1 / np.sqrt(a)
        weights.append((rng.uniform(-bound, bound, (a, b)).astype(np.float32),
                        rng.uniform(-bound, bound, b).astype(np.float32)))
    return weights


class Chainrule:
    def __init__(self, weights, args):
        import chainrule as cr

        cr.set_num_threads(args.threads)
        self.model = cr.Sequential([cr.Dense(a, b) for a, b in zip(ARCH, ARCH[1:])],
                                   optimizer=cr.optimizers.SGD(lr=args.lr, momentum=0.9))
        self.model.set_weights(weights)
        self.batch = args.batch

    def train_epoch(self, X, y):
        self.model.fit(X, y, epochs=1, batch_size=self.batch, shuffle=False, verbose=0)

    def accuracy(self, X, y):
        return self.model.evaluate(X, y)["accuracy"]


class Torch:
    def __init__(self, weights, args):
        import torch

        self.torch = torch
        torch.set_num_threads(args.threads)
        layers = []
        for i, (W, b) in enumerate(weights):
            linear = torch.nn.Linear(*W.shape)
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(W.T.copy()))  # torch keeps W as (out, in)
                linear.bias.copy_(torch.from_numpy(b))
            layers.append(linear)
            if i < len(weights) - 1:
                layers.append(torch.nn.ReLU())
        self.net = torch.nn.Sequential(*layers)
        self.opt = torch.optim.SGD(self.net.parameters(), lr=args.lr, momentum=0.9)
        self.loss_fn = torch.nn.CrossEntropyLoss()
        self.batch = args.batch

    def train_epoch(self, X, y):
        tx, ty = self.torch.from_numpy(X), self.torch.from_numpy(y.astype(np.int64))
        self.net.train()
        for s in range(0, tx.shape[0], self.batch):
            self.opt.zero_grad()
            self.loss_fn(self.net(tx[s:s + self.batch]), ty[s:s + self.batch]).backward()
            self.opt.step()

    def accuracy(self, X, y):
        self.net.eval()
        with self.torch.no_grad():
            predicted = self.net(self.torch.from_numpy(X)).argmax(1).numpy()
        return float((predicted == y).mean())


def time_to_target(trainer, X, y, Xt, yt, args):
    orders = np.random.default_rng(args.seed + 1)
    elapsed, acc, curve = 0.0, float("nan"), []
    for epoch in range(1, args.max_epochs + 1):
        order = orders.permutation(X.shape[0])
        Xe, ye = X[order], y[order]  # outside the clock, the same for both libraries
        start = time.perf_counter()
        trainer.train_epoch(Xe, ye)
        acc = trainer.accuracy(Xt, yt)
        elapsed += time.perf_counter() - start
        curve.append(acc)
        if acc >= args.target:
            return elapsed, epoch, curve
    return float("nan"), args.max_epochs, curve


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

    if "torch" in args.libs.split(","):
        import torch  # noqa: F401  (before chainrule, so torch's OpenMP keeps its own defaults)
    import chainrule as cr

    (X, y), (Xt, yt) = cr.datasets.load_mnist(args.data, download=False)
    y, yt = y.astype(np.int32), yt.astype(np.int32)
    print(f"MNIST {X.shape} {X.dtype} ({X.nbytes / 2**20:.0f} MiB), target {args.target:.0%}, "
          f"784-256-128-10 SGD lr {args.lr} momentum 0.9 batch {args.batch}, "
          f"{args.threads} thread(s), same initial weights and sample order for both")
    print("| library | wall time to target (s) | epochs | s per epoch | test accuracy by epoch |")
    print("|---|---|---|---|---|")
    weights = initial_weights(args.seed)
    for lib in args.libs.split(","):
        trainer = (Chainrule if lib == "chainrule" else Torch)(weights, args)
        secs, epochs, curve = time_to_target(trainer, X, y, Xt, yt, args)
        print(f"| {lib} | {secs:.2f} | {epochs} | {secs / epochs:.2f} | "
              f"{' '.join(f'{a:.4f}' for a in curve)} |", flush=True)
    print(f"\npeak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}"
          " MiB (includes torch when run)")


if __name__ == "__main__":
    main()
