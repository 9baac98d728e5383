"""The GRU layers: ``GRU`` (a stack over layers and directions) and ``GRUCell`` (one step)."""
import warnings

import numpy as np

from . import devices, validation
from .functional import backward_layer, forward_layer
from .grad_mode import grad_enabled
from .module import Module


class GRU(Module):
    """Multi-layer GRU with ``torch.nn.GRU``'s arguments, shapes and parameter names.

    ``reset_after=True`` is PyTorch's/cuDNN's form, ``False`` is Cho et al.'s
    (Keras ``reset_after=False``, ONNX's default). See DESIGN.md for the maths.

    On ``device="cuda"`` the parameters and gradients are device arrays; NumPy
    inputs give NumPy results, CUDA arrays (Numba, CuPy, PyTorch) device arrays.
    """

    devices = ("cpu", "cuda")

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, reset_after=True, dtype="float32",
                 device="auto", seed=None):
        super().__init__(dtype, device, seed)
        self.input_size = validation.check_positive_int("input_size", input_size)
        self.hidden_size = validation.check_positive_int("hidden_size", hidden_size)
        self.num_layers = validation.check_positive_int("num_layers", num_layers)
        self.dropout = validation.check_dropout(dropout)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.bidirectional = bool(bidirectional)
        self.reset_after = bool(reset_after)
        if self.dropout > 0 and self.num_layers == 1:
            warnings.warn("dropout acts between layers, so it has no effect with num_layers=1 "
                          f"(got dropout={self.dropout})", UserWarning, stacklevel=2)
        self.num_directions = 2 if self.bidirectional else 1
        H = self.hidden_size
        bound = 1.0 / np.sqrt(H)
        for layer in range(self.num_layers):
            layer_input = self.input_size if layer == 0 else H * self.num_directions
            for suffix in self._suffixes(layer):
                self._add_parameter(f"weight_ih{suffix}", (3 * H, layer_input), bound)
                self._add_parameter(f"weight_hh{suffix}", (3 * H, H), bound)
                if self.bias:
                    self._add_parameter(f"bias_ih{suffix}", (3 * H,), bound)
                    self._add_parameter(f"bias_hh{suffix}", (3 * H,), bound)
        self._cache = None

    def _suffixes(self, layer):
        return [f"_l{layer}", f"_l{layer}_reverse"][:self.num_directions]

    def _weights(self, suffix):
        p = self._params
        return (p["weight_ih" + suffix], p["weight_hh" + suffix],
                p.get("bias_ih" + suffix), p.get("bias_hh" + suffix))

    def forward(self, x, h0=None, lengths=None, check_finite=False):
        """x: (T, B, I) ((B, T, I) if batch_first) or unbatched (T, I).

        Returns out (T, B, D*H) and hn (L*D, B, H), in the layout of ``x``
        (and its family: NumPy, or device arrays for a CUDA array ``x``).
        """
        device = self.device
        ops = devices.array_ops(device)
        host_io = not devices.is_cuda_array(x)
        x, batched = devices.sequence_input(x, self.input_size, self.batch_first, self.dtype, check_finite, device)
        T, B, _ = x.shape
        L, D, H = self.num_layers, self.num_directions, self.hidden_size
        h0 = devices.state_input("h0", h0, (L * D, B, H) if batched else (L * D, H), self.dtype, check_finite,
                                  device)
        if h0 is not None:
            h0 = h0.reshape(L * D, B, H)
        lengths = validation.check_lengths(devices.lengths_to_host(lengths), B, T)
        keep = grad_enabled()
        lengths = ops.asarray(lengths, np.int64)     # on a GPU: copied over once for all layers

        hns, caches, masks, device_masks = [], [], [], []
        layer_input = x
        for layer in range(L):
            outs = []
            for d, suffix in enumerate(self._suffixes(layer)):
                index = layer * D + d
                out, hn, cache = forward_layer(
                    layer_input, *self._weights(suffix), None if h0 is None else h0[index], lengths,
                    reverse=d == 1, reset_after=self.reset_after, training=keep, device=device)
                outs.append(out)
                hns.append(hn)
                caches.append(cache)
            layer_output = outs[0] if D == 1 else ops.concatenate_last(outs)
            if self.training and self.dropout > 0 and layer < L - 1:
                keep_prob = 1.0 - self.dropout
                # drawn on the host on every device: a seed gives the same masks everywhere
                mask = ((self._rng.random(layer_output.shape) < keep_prob).astype(self.dtype)
                        / self.dtype.type(keep_prob))
                device_mask = ops.asarray(mask, self.dtype)
                layer_output = ops.multiply(layer_output, device_mask)
                masks.append(mask)
                device_masks.append(device_mask)
            else:
                masks.append(None)
                device_masks.append(None)
            layer_input = layer_output
        hn = ops.stack(hns)
        self._cache = dict(caches=caches, masks=masks, device_masks=device_masks, batched=batched,
                           shape=(T, B)) if keep else None
        out = self._to_user_layout(layer_input, batched, ops)
        return devices.to_user(out, host_io), devices.to_user(hn if batched else hn.reshape(L * D, H), host_io)

    def backward(self, dout, dhn=None):
        """BPTT through the last forward. Adds every parameter gradient into ``self.grads``.

        dout: gradient with respect to ``out`` (its shape and layout); dhn: with
        respect to ``hn`` (None: zero). Returns (dx, dh0) in the layout of the
        forward's inputs (and the family of ``dout``); dh0 is returned even when
        no h0 was given.
        """
        if self._cache is None:
            raise RuntimeError("backward needs a forward first: call gru(x) before gru.backward(dout) "
                               "(a forward under numgru.no_grad() keeps nothing for a backward)")
        device = self.device
        ops = devices.array_ops(device)
        cache = self._cache
        T, B = cache["shape"]
        batched = cache["batched"]
        L, D, H = self.num_layers, self.num_directions, self.hidden_size
        out_shape = (T, B, D * H)
        if batched and self.batch_first:
            out_shape = (B, T, D * H)
        elif not batched:
            out_shape = (T, D * H)
        host_io = not devices.is_cuda_array(dout)
        dout = devices.grad_input("dout", dout, out_shape, self.dtype, device)
        if not batched:
            dout = dout.reshape(T, 1, D * H)
        elif self.batch_first:
            dout = ops.time_major(dout)
        if dhn is not None:
            dhn = devices.grad_input("dhn", dhn, (L * D, B, H) if batched else (L * D, H), self.dtype, device)
            if not batched:
                dhn = dhn.reshape(L * D, 1, H)

        dh0s = [None] * (L * D)
        grad_output = dout
        for layer in reversed(range(L)):
            mask = cache["device_masks"][layer]
            if mask is not None:
                grad_output = ops.multiply(grad_output, mask)
            grad_input = None
            for d, suffix in enumerate(self._suffixes(layer)):
                index = layer * D + d
                dx, dh0s[index], dweights = backward_layer(
                    cache["caches"][index], grad_output[:, :, d * H:(d + 1) * H],
                    None if dhn is None else dhn[index],
                    into=(self.grads["weight_ih" + suffix], self.grads["weight_hh" + suffix]))
                grad_input = dx if grad_input is None else ops.add(grad_input, dx)
                for name, grad in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"), dweights):
                    if grad is not None:
                        ops.add_(self.grads[name + suffix], grad)
            grad_output = grad_input
        dh0 = ops.stack(dh0s)
        dx = self._to_user_layout(grad_output, batched, ops)
        return devices.to_user(dx, host_io), devices.to_user(dh0 if batched else dh0.reshape(L * D, H), host_io)

    def _to_user_layout(self, seq, batched, ops):
        """(T, B, F) -> the layout the user gave: batch-first or unbatched."""
        if not batched:
            return seq.reshape(seq.shape[0], seq.shape[2])
        return ops.swap01(seq) if self.batch_first else seq

    def __repr__(self):
        return (f"GRU({self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, bias={self.bias}, "
                f"batch_first={self.batch_first}, dropout={self.dropout}, bidirectional={self.bidirectional}, "
                f"reset_after={self.reset_after}, dtype='{self.dtype.name}')")


class GRUCell(Module):
    """One GRU step with ``torch.nn.GRUCell``'s arguments and parameter names.

    Runs the sequence kernel on a length-1 sequence, so the maths is shared.
    """

    devices = ("cpu", "cuda")

    def __init__(self, input_size, hidden_size, bias=True, reset_after=True, dtype="float32",
                 device="auto", seed=None):
        super().__init__(dtype, device, seed)
        self.input_size = validation.check_positive_int("input_size", input_size)
        self.hidden_size = validation.check_positive_int("hidden_size", hidden_size)
        self.bias = bool(bias)
        self.reset_after = bool(reset_after)
        H = self.hidden_size
        bound = 1.0 / np.sqrt(H)
        self._add_parameter("weight_ih", (3 * H, self.input_size), bound)
        self._add_parameter("weight_hh", (3 * H, H), bound)
        if self.bias:
            self._add_parameter("bias_ih", (3 * H,), bound)
            self._add_parameter("bias_hh", (3 * H,), bound)
        self._cache = None

    def forward(self, x, h=None, check_finite=False):
        """x: (B, I) or unbatched (I,); h: (B, H) / (H,) or None (zeros). Returns h' like h."""
        device = self.device
        host_io = not devices.is_cuda_array(x)
        x_step, batched = devices.step_input(x, self.input_size, self.dtype, check_finite, device)
        B = x_step.shape[1]
        h = devices.state_input("h", h, (B, self.hidden_size) if batched else (self.hidden_size,),
                                 self.dtype, check_finite, device)
        p = self._params
        ones = np.ones(B, np.int64)
        keep = grad_enabled()
        _, h_next, cache = forward_layer(
            x_step, p["weight_ih"], p["weight_hh"], p.get("bias_ih"), p.get("bias_hh"),
            None if h is None else h.reshape(B, self.hidden_size), ones, reset_after=self.reset_after,
            training=keep, device=device)
        self._cache = (cache, batched) if keep else None
        return devices.to_user(h_next if batched else h_next.reshape(self.hidden_size), host_io)

    def backward(self, dh_next):
        """Gradient with respect to the returned h'. Returns (dx, dh); adds into ``self.grads``."""
        if self._cache is None:
            raise RuntimeError("backward needs a forward first: call cell(x, h) before cell.backward(dh) "
                               "(a forward under numgru.no_grad() keeps nothing for a backward)")
        cache, batched = self._cache
        _, B, H = cache.shape
        ops = devices.array_ops(self.device)
        host_io = not devices.is_cuda_array(dh_next)
        dh_next = devices.grad_input("dh_next", dh_next, (B, H) if batched else (H,), self.dtype, self.device)
        dx, dh, dweights = backward_layer(cache, None, dh_next.reshape(B, H),
                                          into=(self.grads["weight_ih"], self.grads["weight_hh"]))
        for name, grad in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"), dweights):
            if grad is not None:
                ops.add_(self.grads[name], grad)
        I = dx.shape[2]
        dx, dh = (dx.reshape(B, I), dh) if batched else (dx.reshape(I), dh.reshape(H))
        return devices.to_user(dx, host_io), devices.to_user(dh, host_io)

    def __repr__(self):
        return (f"GRUCell({self.input_size}, {self.hidden_size}, bias={self.bias}, "
                f"reset_after={self.reset_after}, dtype='{self.dtype.name}')")
