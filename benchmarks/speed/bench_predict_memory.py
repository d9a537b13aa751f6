"""Memory of prediction and scoring grows with the input, not with intermediate tensors.

    python -m benchmarks.speed.bench_predict_memory [--rows 20000 200000 1000000]

For each size, a fresh process fits a reference-sized GMVAE (784-512-512, latent 64,
K = 10) on 200 rows, then runs ``predict_proba`` and ``score_samples`` on ``rows`` x 784
float32 rows. It prints the peak resident memory above what the process held with the
input in memory, which stays about constant (chunked inference), and the throughput.
"""

import argparse
import json
import subprocess
import sys

CHILD = """
import json, resource, sys, time
import numpy as np
from sk_gmvae import GMVAEClustering
rows = int(sys.argv[1])
rng = np.random.default_rng(0)
# predict_proba by q(y|x): 200 rows would otherwise give 64 importance draws per row.
est = GMVAEClustering(max_epochs=1, posterior_samples=0, random_state=0)
est.fit(rng.random((200, 784), dtype=np.float32))
X = rng.random((rows, 784), dtype=np.float32)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter(); est.predict_proba(X); t_proba = time.perf_counter() - t
t = time.perf_counter(); est.score_samples(X); t_score = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"rows": rows, "input_mib": X.nbytes / 2**20,
                  "extra_peak_mib": (peak - base) / 1024,
                  "proba_rows_per_s": rows / t_proba, "score_rows_per_s": rows / t_score}))
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", type=int, default=[20_000, 200_000])
    args = parser.parse_args(argv)
    for rows in args.rows:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(rows)], capture_output=True, text=True, check=True
        ).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(
            f"{r['rows']:>9,d} rows ({r['input_mib']:7.0f} MiB input): peak memory above the "
            f"input {r['extra_peak_mib']:6.0f} MiB; predict_proba {r['proba_rows_per_s']:8.0f} "
            f"rows/s, score_samples {r['score_rows_per_s']:6.0f} rows/s",
            flush=True,
        )


if __name__ == "__main__":
    main()
