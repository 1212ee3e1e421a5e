"""The Python `implicit` library's ALS fit, driven by the `movielens` example (see there).

It reads from standard input, one command a line:
  config FACTORS REGULARIZATION ALPHA ITERATIONS K1 B
  train N      then N lines `user<TAB>item` (the training split, every value 1)
  test N       then N lines `user<TAB>item` (the held-out split, for P@10 only)
  fit          fits once; answers `fit WALL_SECONDS CPU_SECONDS`
  score        answers `score P@10` of the last fit (top 10 excluding training items)
and answers `ready implicit VERSION`, or `unavailable REASON` when `implicit` can't be
imported (then it stops, and the example skips the comparison).

The model is the recs crate's: BM25 weights w (k1, b, users as documents), confidence
1 + alpha*w, regularization not scaled. `implicit` takes confidences as given (its own alpha
only multiplies them), so it gets the matrix 1 + alpha*w with its alpha at 1. The timed part
is what the crate's `AlsModel::fit` does after reading the rows: weighting, confidences, the
model's set-up and the fit (conjugate gradient, 3 steps, one thread, on the CPU).
"""

import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def read_rows(n, users, items):
    rows = []
    for _ in range(n):
        u, i = sys.stdin.readline().rstrip("\n").split("\t")
        rows.append((users.setdefault(u, len(users)), items.setdefault(i, len(items))))
    return rows


def main():
    try:
        import numpy as np
        import scipy.sparse as sp
        import implicit
        from implicit.cpu.als import AlternatingLeastSquares
        from implicit.nearest_neighbours import bm25_weight
    except Exception as e:  # noqa: BLE001 - any import failure means "skip"
        say(f"unavailable {type(e).__name__}: {e}")
        return
    say(f"ready implicit {implicit.__version__}")
    users, items = {}, {}
    config, train, shape, test, model = None, None, None, [], None
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        if cmd[0] == "config":
            config = [int(cmd[1]), float(cmd[2]), float(cmd[3]), int(cmd[4]), float(cmd[5]), float(cmd[6])]
        elif cmd[0] == "train":
            rows = read_rows(int(cmd[1]), users, items)
            u, i = zip(*rows)
            train = (np.array(u), np.array(i))
            shape = (len(users), len(items))
        elif cmd[0] == "test":
            test = read_rows(int(cmd[1]), users, items)
        elif cmd[0] == "fit":
            factors, reg, alpha, iterations, k1, b = config
            raw = sp.csr_matrix((np.ones(len(train[0]), dtype=np.float32), train), shape=shape)
            raw.sum_duplicates()
            wall, cpu = time.perf_counter(), time.process_time()
            conf = bm25_weight(raw, K1=k1, B=b).tocsr().astype(np.float32)
            conf.data = 1.0 + alpha * conf.data
            model = AlternatingLeastSquares(
                factors=factors,
                regularization=reg,
                alpha=1.0,
                iterations=iterations,
                use_cg=True,
                use_native=True,
                calculate_training_loss=False,
                num_threads=1,
                random_state=42,
            )
            model.fit(conf, show_progress=False)
            say(f"fit {time.perf_counter() - wall:.6f} {time.process_time() - cpu:.6f}")
            model_input = raw
        elif cmd[0] == "score":
            truth = {}
            for u, i in test:
                truth.setdefault(u, set()).add(i)
            ids = np.array(sorted(u for u in truth if u < model_input.shape[0]))
            top, _ = model.recommend(ids, model_input[ids], N=10, filter_already_liked_items=True)
            hits = sum(len(truth[u] & set(row.tolist())) for u, row in zip(ids, top))
            say(f"score {hits / (10 * len(truth)):.6f}")
        elif cmd[0] == "quit":
            return


if __name__ == "__main__":
    main()
