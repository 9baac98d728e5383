"""``Seq2Seq``: the GRU encoder-decoder of Cho et al. (2014) with Luong et al.'s (2015) global attention.

    source ids -> Embedding -> bidirectional GRU stack -> memory (B, S, 2H) and final states
    decoder h0[l] = tanh(bridge([forward final state; backward final state] of encoder layer l))
    target ids (teacher forcing: <bos> y_1 .. y_{T-1}) -> Embedding -> GRU stack from h0 -> h_t
    c_t = Attention(h_t, memory), masked by the source lengths
    h~_t = tanh(combine([c_t; h_t]))  ->  head -> logits over the target vocabulary

Training runs the decoder's recurrence as whole-sequence GRU calls: the
attention comes after the decoder GRU (Luong's global attention), so no
context is fed back into the recurrence and no Python runs per target step.
``attention=None`` is the encoder-decoder without attention, whose only view
of the source is the decoder's initial state (Cho et al.'s fixed-length
context; their model also fed that context to every step, this one does not).

Parameters keep their layers' names under the prefixes ``source_embedding.``,
``encoder.``, ``bridge.``, ``target_embedding.``, ``decoder.``, ``attention.``,
``combine.`` and ``head.``; one optimiser over ``[model]`` updates them all.
Ids are batch-first (B, S) / (B, T) with lengths; runs on the CPU.
"""
import numpy as np

from . import validation
from .attention import Attention
from .embedding import Embedding
from .grad_mode import grad_enabled, no_grad
from .gru import GRU
from .linear import Linear
from .module import Module
from .streaming import GRUStream

__all__ = ["Seq2Seq", "ATTENTIONS"]

ATTENTIONS = ("general", "additive", None)


class Seq2Seq(Module):
    """Seq2Seq(source_vocab_size, target_vocab_size, embedding_dim, hidden_size, num_layers=1, attention="general").

    source/target padding_idx: the ``<pad>`` ids (their embedding rows stay 0).
    """

    devices = ("cpu",)

    def __init__(self, source_vocab_size, target_vocab_size, embedding_dim=64, hidden_size=128, num_layers=1,
                 attention="general", source_padding_idx=0, target_padding_idx=0, dtype="float32", device="auto",
                 seed=None):
        super().__init__(dtype, device, seed)
        if attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}, got {attention!r} (a decoder state of H "
                             "units and an encoder memory of 2H cannot be dot-multiplied: use 'general')")
        self.attention_score = attention
        seeds = [None] * 8 if seed is None else [int(s) for s in np.random.SeedSequence(seed).generate_state(8)]
        common = dict(dtype=self.dtype, device=self.device)
        self.source_embedding = Embedding(source_vocab_size, embedding_dim, padding_idx=source_padding_idx,
                                          seed=seeds[0], **common)
        self.encoder = GRU(embedding_dim, hidden_size, num_layers, bidirectional=True, seed=seeds[1], **common)
        H = self.encoder.hidden_size
        self.bridge = Linear(2 * H, H, seed=seeds[2], **common)
        self.target_embedding = Embedding(target_vocab_size, embedding_dim, padding_idx=target_padding_idx,
                                          seed=seeds[3], **common)
        self.decoder = GRU(embedding_dim, H, num_layers, seed=seeds[4], **common)
        layers = ["source_embedding", "encoder", "bridge", "target_embedding", "decoder"]
        if attention is not None:
            self.attention = Attention(H, 2 * H, score=attention, attention_size=H if attention == "additive" else None,
                                       seed=seeds[5], **common)
            self.combine = Linear(3 * H, H, seed=seeds[6], **common)
            layers += ["attention", "combine"]
        self.head = Linear(H, target_vocab_size, seed=seeds[7], **common)
        self._adopt_layers(*layers, "head")
        self._cache = None

    hidden_size = property(lambda self: self.encoder.hidden_size)
    num_layers = property(lambda self: self.encoder.num_layers)

    # ------------------------------------------------------------------ the network

    def _encode(self, source, source_lengths):
        """-> memory (B, S, 2H), decoder h0 (L, B, H), checked lengths, and the bridge's tanh output."""
        source = validation.check_ids("source", source, self.source_embedding.num_embeddings)
        if source.ndim != 2 or 0 in source.shape:
            raise ValueError(f"source must be 2-D (B, S) token ids with B, S >= 1, got shape {source.shape}")
        source_lengths = validation.check_lengths(source_lengths, *source.shape)
        out, hn = self.encoder(self.source_embedding(source.T), lengths=source_lengths)     # (S, B, 2H)
        L, H = self.num_layers, self.hidden_size
        finals = hn.reshape(L, 2, -1, H).transpose(0, 2, 1, 3).reshape(L, -1, 2 * H)     # per layer [fwd; bwd]
        h0 = np.tanh(self.bridge(finals))
        return np.ascontiguousarray(out.transpose(1, 0, 2)), h0, source_lengths

    def _readout(self, states, memory, source_lengths):
        """Decoder states (B, T, H) (or (B, H)) -> (logits, attentional states or None)."""
        if self.attention_score is None:
            return self.head(states), None
        context, _ = self.attention(states, memory, source_lengths)
        attentional = np.tanh(self.combine(np.concatenate([context, states], axis=-1)))
        return self.head(attentional), attentional

    def forward(self, source, target_in, source_lengths=None, target_lengths=None):
        """source (B, S), target_in (B, T) (teacher forcing) ids and their lengths -> logits (B, T, target vocab)."""
        memory, h0, source_lengths = self._encode(source, source_lengths)
        target_in = validation.check_ids("target_in", target_in, self.target_embedding.num_embeddings)
        if target_in.ndim != 2 or target_in.shape[0] != memory.shape[0] or target_in.shape[1] == 0:
            raise ValueError(f"target_in must be (B={memory.shape[0]}, T) token ids with T >= 1, got shape "
                             f"{target_in.shape}")
        target_lengths = validation.check_lengths(target_lengths, *target_in.shape)
        states, _ = self.decoder(self.target_embedding(target_in.T), h0=h0, lengths=target_lengths)   # (T, B, H)
        logits, attentional = self._readout(np.ascontiguousarray(states.transpose(1, 0, 2)), memory, source_lengths)
        self._cache = dict(h0=h0, attentional=attentional, source_steps=memory.shape[1]) if grad_enabled() else None
        return logits

    def backward(self, dlogits):
        """Gradient with respect to the last forward's logits (B, T, V); adds into every parameter's grad."""
        if self._cache is None:
            raise RuntimeError("backward needs a forward first: call model(source, target_in, ...) before "
                               "model.backward(dlogits)")
        H, L = self.hidden_size, self.num_layers
        dreadout = self.head.backward(dlogits)
        if self.attention_score is None:
            dstates, dmemory = dreadout, None
        else:
            attentional = self._cache["attentional"]
            dcombined = self.combine.backward(dreadout * (1 - attentional * attentional))
            dstates = dcombined[..., 2 * H:]
            dquery, dmemory = self.attention.backward(np.ascontiguousarray(dcombined[..., :2 * H]))
            dstates = dstates + dquery
        dtarget, dh0 = self.decoder.backward(np.ascontiguousarray(dstates.transpose(1, 0, 2)))
        self.target_embedding.backward(dtarget)
        h0 = self._cache["h0"]
        dfinals = self.bridge.backward(dh0 * (1 - h0 * h0))                       # (L, B, 2H)
        dhn = dfinals.reshape(L, -1, 2, H).transpose(0, 2, 1, 3).reshape(2 * L, -1, H)
        B, S = dfinals.shape[1], self._cache["source_steps"]
        dout = np.zeros((S, B, 2 * H), self.dtype) if dmemory is None else np.ascontiguousarray(
            dmemory.transpose(1, 0, 2))
        dsource, _ = self.encoder.backward(dout, dhn)
        self.source_embedding.backward(dsource)

    # ------------------------------------------------------------------ decoding

    def greedy_decode(self, source, source_lengths=None, bos=2, eos=3, max_len=50):
        """The likeliest next token at each step, one compiled GRU step per token for the whole batch.

        Returns one int64 array of target ids per sentence, without <bos>, up
        to and without its first <eos> (at most ``max_len`` tokens).
        """
        max_len = validation.check_positive_int("max_len", max_len)
        was_training = self.training
        self.eval()
        try:
            with no_grad():
                memory, h0, source_lengths = self._encode(source, source_lengths)
                B = memory.shape[0]
                stream = GRUStream(self.decoder, batch_size=B, h0=h0)
                token = np.full(B, bos, np.int64)
                out = np.zeros((B, max_len), np.int64)
                done = np.zeros(B, bool)
                for t in range(max_len):
                    state = stream.step(np.ascontiguousarray(self.target_embedding(token)))
                    token = self._readout(state, memory, source_lengths)[0].argmax(axis=-1)
                    out[:, t] = token
                    done |= token == eos
                    if done.all():
                        break
        finally:
            self.train(was_training)
        return [row[:np.flatnonzero(row == eos)[0]] if (row == eos).any() else row[:max_len] for row in out]

    def beam_search(self, source, source_lengths=None, beam_width=5, bos=2, eos=3, max_len=50, length_penalty=1.0):
        """Beam search, batched over sentences: the ``beam_width`` likeliest prefixes of each sentence are
        stepped together (one compiled GRU step for all sentences x beams per token, the state carried, never
        the prefix re-run). A hypothesis ends at <eos>; the search ends when every sentence's beams have
        ended or at ``max_len`` tokens. Ended hypotheses are ranked by log-probability / length **
        ``length_penalty`` (0: raw log-probability; the length counts <eos>). Returns one int64 array of
        target ids per sentence, as ``greedy_decode``.
        """
        beam_width = validation.check_positive_int("beam_width", beam_width)
        max_len = validation.check_positive_int("max_len", max_len)
        length_penalty = validation.check_real("length_penalty", length_penalty, low=0.0)
        was_training = self.training
        self.eval()
        try:
            with no_grad():
                return self._beam_search(source, source_lengths, beam_width, bos, eos, max_len, length_penalty)
        finally:
            self.train(was_training)

    def _beam_search(self, source, source_lengths, K, bos, eos, max_len, length_penalty):
        memory, h0, source_lengths = self._encode(source, source_lengths)
        B = memory.shape[0]
        memory, source_lengths = np.repeat(memory, K, axis=0), np.repeat(source_lengths, K)       # row b*K + k
        stream = GRUStream(self.decoder, batch_size=B * K, h0=np.repeat(h0, K, axis=1))
        scores = np.full((B, K), -np.inf)
        scores[:, 0] = 0.0                               # one live beam at first: the others copy it
        tokens = np.full((B, K, max_len), eos, np.int64)
        ended = np.zeros((B, K), bool)
        lengths = np.zeros((B, K), np.int64)
        last = np.full(B * K, bos, np.int64)
        rows = np.arange(B)[:, None]
        for t in range(max_len):
            state = stream.step(np.ascontiguousarray(self.target_embedding(last)))
            logits = self._readout(state, memory, source_lengths)[0].astype(np.float64)
            log_probs = logits - logits.max(axis=-1, keepdims=True)
            log_probs -= np.log(np.exp(log_probs).sum(axis=-1, keepdims=True))
            log_probs = log_probs.reshape(B, K, -1)
            # An ended hypothesis stays as it is: one continuation (eos) at no cost.
            log_probs[ended] = -np.inf
            log_probs[ended, eos] = 0.0
            V = log_probs.shape[-1]
            candidates = (scores[:, :, None] + log_probs).reshape(B, K * V)
            best = np.argsort(-candidates, axis=1, kind="stable")[:, :K]
            beam, token = best // V, best % V
            scores = candidates[rows, best]
            was_ended = ended[rows, beam]
            tokens = tokens[rows, beam]
            lengths = lengths[rows, beam] + ~was_ended
            tokens[:, :, t] = np.where(was_ended, eos, token)
            ended = was_ended | (token == eos)
            stream.state = stream.state.reshape(-1, B, K, self.hidden_size)[:, rows, beam].reshape(-1, B * K,
                                                                                                    self.hidden_size)
            last = tokens[:, :, t].reshape(-1)
            if ended.all():
                break
        ranked = np.where(ended, scores / np.maximum(lengths, 1) ** length_penalty, -np.inf)
        ranked = np.where(ended.any(axis=1, keepdims=True), ranked, scores)   # nothing ended: the likeliest prefix
        choice = ranked.argmax(axis=1)
        out = []
        for b in range(B):
            row = tokens[b, choice[b]]
            stop = np.flatnonzero(row == eos)
            out.append(row[:stop[0]] if stop.size else row)
        return out

    def config(self):
        """The constructor arguments that rebuild this model (used by ``numgru.save``)."""
        return dict(source_vocab_size=self.source_embedding.num_embeddings,
                    target_vocab_size=self.target_embedding.num_embeddings,
                    embedding_dim=self.source_embedding.embedding_dim, hidden_size=self.hidden_size,
                    num_layers=self.num_layers, attention=self.attention_score,
                    source_padding_idx=self.source_embedding.padding_idx,
                    target_padding_idx=self.target_embedding.padding_idx, dtype=self.dtype.name)

    def __repr__(self):
        c = self.config()
        return (f"Seq2Seq({c['source_vocab_size']} -> {c['target_vocab_size']} tokens, embedding_dim="
                f"{c['embedding_dim']}, hidden_size={c['hidden_size']}, num_layers={c['num_layers']}, "
                f"attention={c['attention']!r})")
