"""``sk-gmvae reproduce`` on small stand-in data, as a script: the crash-safety tests
start it in a subprocess and kill it.

With ``SK_GMVAE_TEST_DIE_IN_WRITE=k`` in the environment, the k-th write of a
checkpoint or history file dies half-way through the file (``os._exit``), as a process
killed mid-write would.
"""

import os
import sys

import numpy as np


def main(argv: list[str]) -> int:
    import torch

    torch.set_num_threads(1)
    from sk_gmvae.study import protocol

    rng = np.random.default_rng(0)
    data = {
        s: (rng.random((n, 784), dtype=np.float32), rng.integers(0, 10, n))
        for s, n in (("train", 300), ("test", 30))
    }
    protocol.load_mnist = lambda subset, return_X_y, data_home: data[subset]
    die_at = int(os.environ.get("SK_GMVAE_TEST_DIE_IN_WRITE", "0"))
    if die_at:
        from sk_gmvae.callbacks import _checkpoint

        writes = 0

        def dying_write(f, data: bytes) -> None:
            nonlocal writes
            writes += 1
            if writes == die_at:
                f.write(data[: len(data) // 2])
                f.flush()
                os._exit(137)
            f.write(data)

        _checkpoint._write = dying_write
    from sk_gmvae.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
