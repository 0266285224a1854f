"""Run Train-by-Reconnect's LaPerm sync (TensorFlow) on the tensors of an npz file; called by generate.py.

Usage: ``PYTHON_WITH_TENSORFLOW laperm_tf.py CHECKOUT INPUTS.npz OUTPUTS.npz``. For every ``NAME_initial`` /
``NAME_current`` pair of INPUTS: variables hold theta_0, ``LaPerm.sort_theta`` sorts them, the variables are set to
theta_t, ``LaPerm.apply_synchronization`` syncs them; OUTPUTS gets ``NAME`` = the synced values.
"""

import sys
from pathlib import Path

import numpy as np


class Holder:
    """What LaPerm.set_model needs of a model: its trainable variables."""

    def __init__(self, variables):
        self.trainable_variables = variables


def main() -> None:
    checkout, inputs, outputs = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    sys.path.insert(0, str(checkout))
    import tensorflow as tf
    from train_by_reconnect.LaPerm import LaPerm

    arrays = dict(np.load(inputs))
    names = sorted(k[: -len("_initial")] for k in arrays if k.endswith("_initial"))
    variables = [tf.Variable(arrays[f"{n}_initial"], name="bias" if n.endswith("bias") else "kernel") for n in names]
    laperm = LaPerm(skip_bn=True, skip_bias=False)
    laperm.set_model(Holder(variables))
    laperm.sort_theta()
    for n, v in zip(names, variables):
        v.assign(arrays[f"{n}_current"])
    laperm.apply_synchronization(variables)
    np.savez(outputs, tensorflow_version=np.array(tf.__version__), **{n: v.numpy() for n, v in zip(names, variables)})


if __name__ == "__main__":
    main()
