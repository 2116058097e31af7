"""Code taught in lectures/L05_optimisers.ipynb: its cells marked ``# @save``, exported by ``python -m tools.export``.

GENERATED FILE, do not edit: change the notebook cell and run ``python -m tools.export``
(tests/test_export.py fails while this file and the cells differ).
"""


# lectures/L05_optimisers.ipynb, cell d24d5851
class Optimiser:
    # Shared bookkeeping: a step counter and one state dictionary per parameter.
    def __init__(self, lr):
        if not lr > 0:
            raise ValueError(f"The learning rate must be positive, got {lr}.")
        self.lr = lr
        self.t = 0  # number of steps taken so far
        self.state = None  # one dict of buffers per parameter, created on the first step

    def step(self, params, grads):
        if len(params) != len(grads):
            raise ValueError(f"step() got {len(params)} parameters but {len(grads)} gradients.")
        if self.state is None:
            self.state = [self.init_state(g) for g in grads]
        self.t += 1
        for p, g, s in zip(params, grads, self.state):
            self.update(p, g, s)  # changes p in place

    def init_state(self, g):
        return {}

    def update(self, p, g, s):
        raise NotImplementedError


class GD(Optimiser):
    # theta <- theta - lr * g.  Fed minibatch gradients, this is SGD.
    def update(self, p, g, s):
        p -= self.lr * g


# lectures/L05_optimisers.ipynb, cell 6ff9d985
class Momentum(Optimiser):
    # v <- beta v + g;  theta <- theta - lr v   (PyTorch's form)
    def __init__(self, lr, beta=0.9):
        super().__init__(lr)
        self.beta = beta

    def init_state(self, g):
        return {"v": 0 * g}

    def update(self, p, g, s):
        s["v"] = self.beta * s["v"] + g
        p -= self.lr * s["v"]


class Nesterov(Momentum):
    # v <- beta v + g;  theta <- theta - lr (g + beta v): the step "looks ahead" along the velocity
    def update(self, p, g, s):
        s["v"] = self.beta * s["v"] + g
        p -= self.lr * (g + self.beta * s["v"])


# lectures/L05_optimisers.ipynb, cell e8dc0d39
class AdaGrad(Optimiser):
    # s <- s + g^2;  theta <- theta - lr g / (sqrt(s) + eps)
    def __init__(self, lr, eps=1e-10):
        super().__init__(lr)
        self.eps = eps

    def init_state(self, g):
        return {"s": 0 * g}

    def update(self, p, g, s):
        s["s"] = s["s"] + g * g
        p -= self.lr * g / (s["s"] ** 0.5 + self.eps)


class RMSProp(Optimiser):
    # s <- beta2 s + (1 - beta2) g^2;  theta <- theta - lr g / (sqrt(s) + eps)
    def __init__(self, lr, beta2=0.99, eps=1e-8):
        super().__init__(lr)
        self.beta2, self.eps = beta2, eps

    def init_state(self, g):
        return {"s": 0 * g}

    def update(self, p, g, s):
        s["s"] = self.beta2 * s["s"] + (1 - self.beta2) * g * g
        p -= self.lr * g / (s["s"] ** 0.5 + self.eps)


# lectures/L05_optimisers.ipynb, cell e29d5b8d
class Adam(Optimiser):
    # Running means of g and g^2, both corrected for starting at zero.
    def __init__(self, lr, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__(lr)
        self.beta1, self.beta2, self.eps = beta1, beta2, eps

    def init_state(self, g):
        return {"m": 0 * g, "v": 0 * g}

    def update(self, p, g, s):
        s["m"] = self.beta1 * s["m"] + (1 - self.beta1) * g  # first moment: mean of g
        s["v"] = self.beta2 * s["v"] + (1 - self.beta2) * g * g  # second moment: mean of g^2
        s["m_hat"] = s["m"] / (1 - self.beta1**self.t)  # bias correction
        s["v_hat"] = s["v"] / (1 - self.beta2**self.t)
        p -= self.lr * s["m_hat"] / (s["v_hat"] ** 0.5 + self.eps)
