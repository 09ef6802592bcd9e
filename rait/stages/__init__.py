"""The stage commands, one module per arrow of the loop: ``rait probe`` (knowledge table), ``rait rehearse`` (CRaFT's
M_r), ``rait build`` (training set), ``rait train`` (with its trainer and checkpoints), ``rait eval`` (with the
lm-eval export) and ``rait ask``. ``rait grads`` lives in :mod:`rait.gradients`."""
