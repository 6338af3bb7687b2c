"""The eval callback: at the input of every matrix product with a weight, the sums llama-imatrix gathers.

llama.cpp's scheduler asks the callback about each graph node (`ask`); for a node it wants, it computes the
graph up to that node and calls again with the node's result ready. The rules are llama-imatrix's
(IMatrixCollector::collect_imatrix): every MUL_MAT_ID is wanted; a MUL_MAT is wanted when its weight is a
layer's (`blk.*`, or `output.weight` with process_output), its input (src1) is F32 and has at least 16
rows (smaller batches are left out, as there). Per node only numpy runs: squares of the input summed over
its rows, added in row order to the running sums (the order llama-imatrix adds in).

Nothing may escape a ctypes callback (ctypes would only print it): an error, Ctrl-C included, is kept,
the callback answers False (the scheduler stops that graph) and `take_failure` hands it to the decode loop.
"""

from __future__ import annotations

import ctypes

import numpy as np

from ggufkit.errors import LlamaFailure
from ggufkit.imatrix.graph import GGML_TYPE_F32, OP_OFFSET, Reader, Tensor, weight_name
from ggufkit.imatrix.matrix import Entry, Matrix

MIN_ROWS = 16  # llama-imatrix: "why are small batches ignored (<16 tokens)?"


class Collector:
    def __init__(self, matrix: Matrix, process_output: bool = False):
        import llama_cpp

        self.matrix = matrix
        self.process_output = process_output
        self.reader = Reader()
        self.failure: BaseException | None = None
        self._last: tuple | None = None  # the last dense node: (input, sums and counts before, after)
        self._ops = (self.reader.g.mul_mat, self.reader.g.mul_mat_id)
        self._int = ctypes.c_int
        self.callback = llama_cpp.ggml_backend_sched_eval_callback(self._on_node)  # kept alive with self

    def take_failure(self) -> BaseException | None:
        failure, self.failure = self.failure, None
        return failure

    def _on_node(self, ptr: int, ask: bool, _user: object) -> bool:
        try:
            if self.failure is not None:
                return False
            if ask:
                if self._int.from_address(ptr + OP_OFFSET).value not in self._ops:
                    return False  # most nodes: one int read
                return self._wanted(Tensor.from_address(ptr))
            self._collect(Tensor.from_address(ptr))
            return True
        except BaseException as e:  # noqa: BLE001  see the module's docstring
            self.failure = e
            return False

    def _wanted(self, t: Tensor) -> bool:
        if t.op == self._ops[1]:
            return True
        src1 = Tensor.from_address(t.src[1])
        if src1.ne[1] < MIN_ROWS or src1.type != GGML_TYPE_F32:
            return False
        name = weight_name(Tensor.from_address(t.src[0]).name)
        return name.startswith("blk.") or (self.process_output and name == "output.weight")

    def _collect(self, t: Tensor) -> None:
        src0, src1 = Tensor.from_address(t.src[0]), Tensor.from_address(t.src[1])
        name = weight_name(src0.name)
        if t.op == self._ops[1]:
            self._last = None
            self._collect_experts(name, src0, self.reader.floats(t.src[1], src1), t)
            return
        # the same input: the same node (its name too, so a node of the next micro-batch that llama.cpp put at
        # the same addresses never passes for it)
        key = (t.src[1], src1.data, src1.name)
        if src1.name and src0.ne[2] * src0.ne[3] == 1 and self._same_as_last(name, key):
            return
        e = self.matrix.entries.get(name)
        before = None if e is None else (e.sums.copy(), e.counts.copy())
        self._collect_dense(name, src0, self.reader.floats(t.src[1], src1))
        e = self.matrix.entries[name]
        self._last = (key, before, e.sums.copy(), e.counts.copy())

    def _same_as_last(self, name: str, key: tuple) -> bool:
        """q, k and v (and gate and up) read one input: when the weight before this one read the same
        tensor and its sums stood where these stand, these end where those ended, bit for bit."""
        last, e = self._last, self.matrix.entries.get(name)
        if last is None or last[0] != key or (last[1] is None) != (e is None):
            return False
        if e is None:  # both new
            self.matrix.entries[name] = Entry(last[2].copy(), last[3].copy())
            return True
        sums, counts = last[1]
        if not (e.sums.size == sums.size and np.array_equal(e.sums, sums) and np.array_equal(e.counts, counts)):
            return False
        e.sums[:], e.counts = last[2], last[3].copy()
        return True

    def _collect_dense(self, name: str, src0: Tensor, x: np.ndarray) -> None:
        """x: (ne3, ne2, rows, cols). A 2-D weight has one matrix; a 3-D/4-D one (rare) one per (i3, i2),
        broadcast over x's higher dimensions as llama-imatrix does."""
        n2, n3 = src0.ne[2], src0.ne[3]
        n_mat, cols = n2 * n3, x.shape[3]
        e = self._entry(name, n_mat * cols, 1)
        if e.counts.size > 1 and (e.counts == e.counts[0]).all():
            e.counts = e.counts[:1].copy()  # one count per dense tensor (older files kept several)
        sums = e.sums.reshape(n_mat, cols)
        if n_mat == 1:
            _add_rows(sums[0], x.reshape(-1, cols))
        else:
            for i3 in range(x.shape[0]):
                for i2 in range(x.shape[1]):
                    _add_rows(sums[(i3 % n3) * n2 + (i2 % n2)], x[i3, i2])
        self._check_finite(name, e.sums)
        e.counts += x.shape[0] * x.shape[1] * x.shape[2] // n_mat

    def _collect_experts(self, name: str, src0: Tensor, x: np.ndarray, t: Tensor) -> None:
        """MUL_MAT_ID: x is (1, tokens, n_used or 1, cols); ids (tokens, n_used) names each row's expert."""
        n_as, cols = src0.ne[2], x.shape[3]
        ids = self.reader.ints(t.src[2], Tensor.from_address(t.src[2]))[0, 0]
        if x.shape[0] != 1 or ids.shape[0] != x.shape[1]:
            raise LlamaFailure(f"unexpected MUL_MAT_ID shapes for {name}: activations {x.shape}, ids {ids.shape}")
        e = self._entry(name, n_as * cols, n_as)
        if e.counts.size == 1 and n_as > 1:
            e.counts = np.full(n_as, e.counts[0], np.int64)  # an older file's one count, broadcast
        elif e.counts.size != n_as:
            raise LlamaFailure(f"inconsistent expert count for {name} ({e.counts.size} vs {n_as})")
        if ids.size and (ids.min() < 0 or ids.max() >= n_as):
            raise LlamaFailure(f"expert id out of range in {name}")
        sums = e.sums.reshape(n_as, cols)
        used = x.shape[2]
        for k in range(ids.shape[1]):  # llama-imatrix's order: expert slot, then token
            rows = x[0, :, k % used, :]
            np.add.at(sums, ids[:, k], rows * rows)
            e.counts += np.bincount(ids[:, k], minlength=n_as)
        self._check_finite(name, sums[np.unique(ids)])

    def _entry(self, name: str, n_values: int, n_counts: int) -> Entry:
        e = self.matrix.entries.get(name)
        if e is None:
            e = self.matrix.entries[name] = Entry(np.zeros(n_values, np.float32), np.zeros(n_counts, np.int64))
        elif e.sums.size != n_values:
            raise LlamaFailure(f"inconsistent size for {name}: {e.sums.size} sums gathered, this node has "
                               f"{n_values} (an --in-file of another model?)")
        return e

    @staticmethod
    def _check_finite(name: str, values: np.ndarray) -> None:
        if not np.isfinite(values).all():
            raise LlamaFailure(f"non-finite activations in {name} (the model produced inf or NaN on this text)")


def _add_rows(acc: np.ndarray, rows: np.ndarray) -> None:
    """acc += sum of rows**2, added row after row from acc on (numpy reduces a leading axis in order)."""
    sq = rows * rows
    sq[0] += acc
    np.sum(sq, axis=0, out=acc)
