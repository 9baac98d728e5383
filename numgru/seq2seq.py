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

from . import losses, text, validation
from .attention import Attention
from .embedding import Embedding
from .grad_mode import grad_enabled
from .gru import GRU
from .linear import Linear
from .module import Module
from .streaming import GRUStream
from .training import fit_rows

__all__ = ["Seq2Seq", "ATTENTIONS"]

ATTENTIONS = ("general", "additive", None)


class Seq2Seq(Module):
    """Seq2Seq(source_vocabulary, target_vocabulary, embedding_dim, hidden_size, num_layers=1, attention="general").

    source/target_vocabulary: a ``numgru.text.Vocabulary`` (or its ``to_list()``),
    which lets the model ``fit`` on sentences and ``translate`` them, and is
    saved with it; or a vocabulary size, for a model on token ids alone.
    dropout: in training, on both embeddings' vectors, on the features the head
    reads, and between GRU layers when num_layers > 1 (0: off).
    tokenizer, source_lower, target_lower: how sentences become tokens (the
    target keeps its case by default, so translations come out cased).
    source/target padding_idx: the ``<pad>`` ids (their embedding rows stay 0).
    """

    devices = ("cpu",)

    def __init__(self, source_vocabulary, target_vocabulary, embedding_dim=64, hidden_size=128, num_layers=1,
                 attention="general", dropout=0.0, tokenizer="word", source_lower=True, target_lower=False,
                 source_padding_idx=0, target_padding_idx=0, dtype="float32", device="auto", seed=None):
        super().__init__(dtype, device, seed)
        if attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}, got {attention!r} (a decoder state of H "
                             "units and an encoder memory of 2H cannot be dot-multiplied: use 'general')")
        self.attention_score = attention
        self.dropout = validation.check_dropout(dropout)
        self.source_vocabulary, source_size = _vocabulary_and_size("source_vocabulary", source_vocabulary)
        self.target_vocabulary, target_size = _vocabulary_and_size("target_vocabulary", target_vocabulary)
        self.tokenizer = validation.check_choice("tokenizer", tokenizer, text.TOKENIZERS)
        self.source_lower, self.target_lower = bool(source_lower), bool(target_lower)
        seeds = [None] * 8 if seed is None else [int(s) for s in np.random.SeedSequence(seed).generate_state(8)]
        common = dict(dtype=self.dtype, device=self.device)
        self.source_embedding = Embedding(source_size, embedding_dim, padding_idx=source_padding_idx,
                                          seed=seeds[0], **common)
        between_layers = self.dropout if num_layers > 1 else 0.0
        self.encoder = GRU(embedding_dim, hidden_size, num_layers, dropout=between_layers, bidirectional=True,
                           seed=seeds[1], **common)
        H = self.encoder.hidden_size
        self.bridge = Linear(2 * H, H, seed=seeds[2], **common)
        self.target_embedding = Embedding(target_size, embedding_dim, padding_idx=target_padding_idx,
                                          seed=seeds[3], **common)
        self.decoder = GRU(embedding_dim, H, num_layers, dropout=between_layers, seed=seeds[4], **common)
        layers = ["source_embedding", "encoder", "bridge", "target_embedding", "decoder"]
        if attention is not None:
            self.attention = Attention(H, 2 * H, score=attention, attention_size=H if attention == "additive" else None,
                                       seed=seeds[5], **common)
            self.combine = Linear(3 * H, H, seed=seeds[6], **common)
            layers += ["attention", "combine"]
        self.head = Linear(H, target_size, seed=seeds[7], **common)
        self._adopt_layers(*layers, "head")
        self._cache = None
        self._masks = {}

    hidden_size = property(lambda self: self.encoder.hidden_size)
    num_layers = property(lambda self: self.encoder.num_layers)

    # ------------------------------------------------------------------ the network

    def _encode(self, source, source_lengths):
        """-> memory (B, S, 2H), decoder h0 (L, B, H) (the bridge's tanh output), checked lengths."""
        source = validation.check_ids("source", source, self.source_embedding.num_embeddings)
        if source.ndim != 2 or 0 in source.shape:
            raise ValueError(f"source must be 2-D (B, S) token ids with B, S >= 1, got shape {source.shape}")
        source_lengths = validation.check_lengths(source_lengths, *source.shape)
        out, hn = self.encoder(self._drop("source", self.source_embedding(source.T)),
                               lengths=source_lengths)     # (S, B, 2H)
        L, H = self.num_layers, self.hidden_size
        finals = hn.reshape(L, 2, -1, H).transpose(0, 2, 1, 3).reshape(L, -1, 2 * H)     # per layer [fwd; bwd]
        h0 = np.tanh(self.bridge(finals))
        return np.ascontiguousarray(out.transpose(1, 0, 2)), h0, source_lengths

    def _readout(self, states, memory, source_lengths, valid=None, keys=None):
        """Decoder states (B, T, H) (or (B, H)) -> (logits, attentional states or None). With ``valid``
        (B, T) bools, the combine and the head run at those positions alone: logits (count, V). keys: the
        attention's projection of the memory, kept by a decoder across its steps."""
        if self.attention_score is None:
            return self.head(self._drop("readout", states if valid is None else states[valid])), None
        context, _ = self.attention(states, memory, source_lengths, keys=keys)
        combined = np.concatenate([context, states], axis=-1)
        attentional = np.tanh(self.combine(combined if valid is None else combined[valid]))
        return self.head(self._drop("readout", attentional)), attentional

    def _keys(self, memory, source_lengths):
        """The attention's projection of the memory, once for all of a decoder's steps (None: no attention)."""
        return None if self.attention_score is None else self.attention.project(memory, source_lengths)

    def _decode(self, memory, h0, target_in, target_lengths):
        """Teacher forcing: the decoder GRU over target_in (B, T) from h0 -> states (B, T, H), checked lengths."""
        target_in = validation.check_ids("target_in", target_in, self.target_embedding.num_embeddings)
        if target_in.ndim != 2 or target_in.shape[0] != memory.shape[0] or target_in.shape[1] == 0:
            raise ValueError(f"target_in must be (B={memory.shape[0]}, T) token ids with T >= 1, got shape "
                             f"{target_in.shape}")
        target_lengths = validation.check_lengths(target_lengths, *target_in.shape)
        states, _ = self.decoder(self._drop("target", self.target_embedding(target_in.T)), h0=h0,
                                 lengths=target_lengths)                                             # (T, B, H)
        return np.ascontiguousarray(states.transpose(1, 0, 2)), target_lengths

    def forward(self, source, target_in, source_lengths=None, target_lengths=None):
        """source (B, S), target_in (B, T) (teacher forcing) ids and their lengths -> logits (B, T, target vocab).

        Logits past a target's length are 0: the head runs at the valid positions alone.
        """
        logits, valid = self._forward_valid(source, target_in, source_lengths, target_lengths)
        full = np.zeros(valid.shape + logits.shape[-1:], logits.dtype)
        full[valid] = logits
        return full

    def _forward_valid(self, source, target_in, source_lengths, target_lengths):
        """``forward`` at the valid target positions: (logits (count, V) in row-major order, valid (B, T))."""
        memory, h0, source_lengths = self._encode(source, source_lengths)
        states, target_lengths = self._decode(memory, h0, target_in, target_lengths)
        valid = np.arange(states.shape[1]) < target_lengths[:, None]
        logits, attentional = self._readout(states, memory, source_lengths, valid)
        self._cache = dict(h0=h0, attentional=attentional, source_steps=memory.shape[1], valid=valid,
                           masks=dict(self._masks)) if grad_enabled() else None
        return logits, valid

    def attention_weights(self, source, target_in, source_lengths=None, target_lengths=None):
        """The attention weights (B, T, S) of teacher-forced decoding: row t says where the decoder looked
        to predict target token t + 1 (padded source positions 0). Needs an attention model."""
        if self.attention_score is None:
            raise ValueError("attention_weights needs a model with attention; this one has attention=None")
        with self._inference():
            memory, h0, source_lengths = self._encode(source, source_lengths)
            states, _ = self._decode(memory, h0, target_in, target_lengths)
            return self.attention(states, memory, source_lengths)[1]

    def backward(self, dlogits):
        """Gradient with respect to the last forward's logits (B, T, V); adds into every parameter's grad.
        Entries past each target's length are not read (those logits were not computed)."""
        if self._cache is None:
            raise RuntimeError("backward needs a forward first: call model(source, target_in, ...) before "
                               "model.backward(dlogits)")
        valid = self._cache["valid"]
        dlogits = validation.check_grad_output("dlogits", dlogits, valid.shape + (self.head.out_features,),
                                               self.dtype)
        self._backward_valid(dlogits[valid])

    def _backward_valid(self, dlogits):
        """``backward`` from the logits of the valid positions alone, (count, V) as ``_forward_valid`` gave."""
        H, L = self.hidden_size, self.num_layers
        valid = self._cache["valid"]
        dreadout = self._undrop("readout", self.head.backward(dlogits))          # (count, H)
        if self.attention_score is None:
            dstates, dmemory = np.zeros(valid.shape + (H,), self.dtype), None
            dstates[valid] = dreadout
        else:
            attentional = self._cache["attentional"]
            dcombined = np.zeros(valid.shape + (3 * H,), self.dtype)
            dcombined[valid] = self.combine.backward(dreadout * (1 - attentional * attentional))
            dquery, dmemory = self.attention.backward(np.ascontiguousarray(dcombined[..., :2 * H]))
            dstates = dcombined[..., 2 * H:] + dquery
        dtarget, dh0 = self.decoder.backward(np.ascontiguousarray(dstates.transpose(1, 0, 2)))
        self.target_embedding.backward(self._undrop("target", dtarget))
        h0 = self._cache["h0"]
        dfinals = self.bridge.backward(dh0 * (1 - h0 * h0))                       # (L, B, 2H)
        dhn = dfinals.reshape(L, -1, 2, H).transpose(0, 2, 1, 3).reshape(2 * L, -1, H)
        B, S = dfinals.shape[1], self._cache["source_steps"]
        dout = np.zeros((S, B, 2 * H), self.dtype) if dmemory is None else np.ascontiguousarray(
            dmemory.transpose(1, 0, 2))
        dsource, _ = self.encoder.backward(dout, dhn)
        self.source_embedding.backward(self._undrop("source", dsource))

    def _drop(self, name, x):
        """In training with dropout, x times a fresh inverted-dropout mask, kept for backward under ``name``."""
        self._masks[name] = self._dropout_mask(x.shape, self.dropout) if self.training and self.dropout else None
        return x if self._masks[name] is None else x * self._masks[name]

    def _undrop(self, name, dx):
        mask = self._cache["masks"][name]
        return dx if mask is None else dx * mask

    # ------------------------------------------------------------------ decoding

    def greedy_decode(self, source, source_lengths=None, bos=2, eos=3, max_len=50):
        """The likeliest next token at each step, one compiled GRU step per token for the whole batch.

        Returns one int64 array of target ids per sentence, without <bos>, up
        to and without its first <eos> (at most ``max_len`` tokens).
        """
        max_len = validation.check_positive_int("max_len", max_len)
        with self._inference():
            memory, h0, source_lengths = self._encode(source, source_lengths)
            keys = self._keys(memory, source_lengths)
            B = memory.shape[0]
            stream = GRUStream(self.decoder, batch_size=B, h0=h0)
            token = np.full(B, bos, np.int64)
            out = np.zeros((B, max_len), np.int64)
            done = np.zeros(B, bool)
            for t in range(max_len):
                state = stream.step(np.ascontiguousarray(self.target_embedding(token)))
                token = self._readout(state, memory, source_lengths, keys=keys)[0].argmax(axis=-1)
                out[:, t] = token
                done |= token == eos
                if done.all():
                    break
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
        with self._inference():
            return self._beam_search(source, source_lengths, beam_width, bos, eos, max_len, length_penalty)

    def _beam_search(self, source, source_lengths, K, bos, eos, max_len, length_penalty):
        memory, h0, source_lengths = self._encode(source, source_lengths)
        keys = self._keys(memory, source_lengths)
        B = memory.shape[0]
        memory, source_lengths = np.repeat(memory, K, axis=0), np.repeat(source_lengths, K)       # row b*K + k
        keys = None if keys is None else np.repeat(keys, K, axis=0)
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
            logits = self._readout(state, memory, source_lengths, keys=keys)[0].astype(np.float64)
            log_probs = logits - logits.max(axis=-1, keepdims=True)
            log_probs -= np.log(np.exp(log_probs).sum(axis=-1, keepdims=True))
            log_probs = log_probs.reshape(B, K, -1)
            # An ended hypothesis stays as it is: one continuation (eos) at no cost.
            log_probs[ended] = -np.inf
            log_probs[ended, eos] = 0.0
            V = log_probs.shape[-1]
            candidates = (scores[:, :, None] + log_probs).reshape(B, K * V)
            # The K best of K x V, in a stable sort's order (score, then index): a partition, then K sorted.
            best = np.argpartition(-candidates, K - 1, axis=1)[:, :K]
            best = np.take_along_axis(best, np.lexsort((best, -candidates[rows, best]), axis=-1), axis=1)
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

    # ------------------------------------------------------------------ sentences

    def _check_vocabularies(self, what):
        if self.source_vocabulary is None or self.target_vocabulary is None:
            raise ValueError(f"{what} needs the model's vocabularies, and this Seq2Seq was built on vocabulary "
                             "sizes (token ids only): build it from numgru.text.Vocabulary objects")

    def encode_sources(self, sentences, name="sentences"):
        """Source sentences (a list of str) -> (ids (B, S), lengths), padded with <pad>; unknown tokens read
        as <unk>; a sentence that gives no token raises ValueError naming it."""
        self._check_vocabularies("encode_sources")
        tokenized = text.tokenize_texts(name, sentences, self.tokenizer, self.source_lower)
        return text.pad([self.source_vocabulary.encode(tokens) for tokens in tokenized],
                        self.source_vocabulary.pad_index)

    def why_untranslatable(self, sentence):
        """None if ``translate`` takes the str ``sentence``, else why not: it gives no token, or none of its
        tokens is in the source vocabulary (the model would see only <unk>, nothing of the sentence)."""
        self._check_vocabularies("why_untranslatable")
        if not isinstance(sentence, str):
            raise TypeError(f"sentence must be a str, got {type(sentence).__name__}")
        try:
            tokens = text.tokenize(sentence, self.tokenizer, self.source_lower)
        except ValueError:                                  # empty, or white space alone
            return "it holds no word or punctuation"
        if all(token not in self.source_vocabulary for token in tokens):
            return (f"none of its {len(tokens)} tokens is in the model's source vocabulary (all would read as "
                    "<unk>)")
        return None

    def encode_targets(self, sentences, name="targets"):
        """Target sentences -> (target_in = <bos> y, target_out = y <eos>, lengths), padded with <pad>."""
        self._check_vocabularies("encode_targets")
        vocab = self.target_vocabulary
        tokenized = text.tokenize_texts(name, sentences, self.tokenizer, self.target_lower)
        target_in, lengths = text.pad([vocab.encode(tokens, add_bos=True) for tokens in tokenized], vocab.pad_index)
        target_out, _ = text.pad([vocab.encode(tokens, add_eos=True) for tokens in tokenized], vocab.pad_index)
        return target_in, target_out, lengths

    def _encode_pairs(self, sources, targets, names):
        source, source_lengths = self.encode_sources(sources, names[0])
        pairs = (source, source_lengths) + self.encode_targets(targets, names[1])
        if len(pairs[2]) != len(source):
            raise ValueError(f"{names[1]} must hold one sentence per sentence of {names[0]}: got {len(source)} "
                             f"and {len(pairs[2])}")
        return pairs

    def _pairs_loss(self, pairs, rows):
        """Mean token cross-entropy of the pairs' ``rows`` and its gradient with respect to the logits of the
        valid positions (each batch cut to its longest sentences); ``_backward_valid`` takes it."""
        source, source_lengths, target_in, target_out, target_lengths = pairs
        S, T = source_lengths[rows].max(), target_lengths[rows].max()
        logits, valid = self._forward_valid(source[rows, :S], target_in[rows, :T], source_lengths[rows],
                                            target_lengths[rows])
        return losses.cross_entropy(logits, target_out[rows, :T][valid])

    def _pairs_step(self, pairs, rows):
        """Forward, loss and backward of the pairs' ``rows``: the gradients added, the mean loss returned."""
        value, dlogits = self._pairs_loss(pairs, rows)
        self._backward_valid(dlogits)
        return value

    def loss(self, sources, targets, batch_size=256):
        """Mean cross-entropy per target token (<eos> included) of teacher-forced decoding, in eval mode."""
        batch_size = validation.check_positive_int("batch_size", batch_size)
        pairs = self._encode_pairs(sources, targets, ("sources", "targets"))
        return self._mean_loss(pairs, batch_size)

    def _mean_loss(self, pairs, batch_size):
        total, tokens = 0.0, 0
        with self._inference():
            for start in range(0, len(pairs[0]), batch_size):
                rows = np.arange(start, min(start + batch_size, len(pairs[0])))
                count = int(pairs[4][rows].sum())
                total += self._pairs_loss(pairs, rows)[0] * count
                tokens += count
        return total / tokens

    def fit(self, sources, targets, *, validation_data=None, epochs=30, batch_size=32, lr=2e-3, weight_decay=0.0,
            patience=5, min_delta=1e-4, clip_norm=5.0, shuffle=True, seed=None, restore_best=True, progress=True,
            desc="Seq2Seq"):
        """Train on sentence pairs (two lists of str, ``targets[i]`` the translation of ``sources[i]``) by
        teacher forcing with Adam; returns a ``numgru.History``.

        The loss is the mean cross-entropy per target token (<eos> included).
        validation_data: (sources, targets), whose loss after every epoch is
        monitored for early stopping (without it, the training loss is).
        patience: stop after this many epochs without an improvement larger
        than ``min_delta`` (None: run every epoch); restore_best: end with the
        best epoch's weights. clip_norm: clip the global gradient norm of every
        batch (None: off). seed: the shuffling's generator.
        """
        pairs = self._encode_pairs(sources, targets, ("sources", "targets"))
        validation_loss = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise TypeError("validation_data must be (sources, targets), two lists of str")
            val_pairs = self._encode_pairs(*validation_data, ("validation_data[0]", "validation_data[1]"))

            def validation_loss():
                return self._mean_loss(val_pairs, 256)

        return fit_rows(self, lambda rows: self._pairs_step(pairs, rows), len(pairs[0]),
                        validation_loss=validation_loss, epochs=epochs,
                        batch_size=batch_size, lr=lr, weight_decay=weight_decay, patience=patience,
                        min_delta=min_delta, clip_norm=clip_norm, shuffle=shuffle, seed=seed,
                        restore_best=restore_best, progress=progress, desc=desc)

    def translate(self, sentences, beam_width=5, max_len=50, length_penalty=1.0, batch_size=64):
        """Translate source sentences (a list of str) -> a list of str, one translation per sentence in order.

        beam_width 1 decodes greedily; more runs ``beam_search``. A
        translation stops at <eos> or after ``max_len`` tokens; its tokens are
        joined by spaces (``numgru.text.detokenize``), and it is "" when the
        model ends at once. Errors (ValueError, naming the entry): a sentence
        with no token, or with no token the source vocabulary holds (the model
        would translate a string of <unk>: nothing of the sentence).
        """
        self._check_vocabularies("translate")
        beam_width = validation.check_positive_int("beam_width", beam_width)
        max_len = validation.check_positive_int("max_len", max_len)
        batch_size = validation.check_positive_int("batch_size", batch_size)
        sentences = validation.check_str_list("sentences", sentences, hint=": wrap one sentence in a list")
        for i, sentence in enumerate(sentences):
            reason = self.why_untranslatable(sentence)
            if reason is not None:
                raise ValueError(f"sentences[{i}] {sentence!r} cannot be translated: {reason}")
        source, source_lengths = self.encode_sources(sentences)
        vocab = self.target_vocabulary
        decoded = []
        for start in range(0, len(source), batch_size):
            rows = slice(start, start + batch_size)
            chunk, lengths = source[rows, :source_lengths[rows].max()], source_lengths[rows]
            if beam_width == 1:
                decoded += self.greedy_decode(chunk, lengths, vocab.bos_index, vocab.eos_index, max_len)
            else:
                decoded += self.beam_search(chunk, lengths, beam_width, vocab.bos_index, vocab.eos_index, max_len,
                                            length_penalty)
        return [text.detokenize(vocab.decode(ids), self.tokenizer) for ids in decoded]

    def config(self):
        """The constructor arguments that rebuild this model (used by ``numgru.save``): the vocabularies'
        ``to_list()`` (or their sizes, for a model built on sizes)."""
        def vocabulary(vocab, embedding):
            return embedding.num_embeddings if vocab is None else vocab.to_list()
        return dict(source_vocabulary=vocabulary(self.source_vocabulary, self.source_embedding),
                    target_vocabulary=vocabulary(self.target_vocabulary, self.target_embedding),
                    embedding_dim=self.source_embedding.embedding_dim, hidden_size=self.hidden_size,
                    num_layers=self.num_layers, attention=self.attention_score, dropout=self.dropout,
                    tokenizer=self.tokenizer,
                    source_lower=self.source_lower, target_lower=self.target_lower,
                    source_padding_idx=self.source_embedding.padding_idx,
                    target_padding_idx=self.target_embedding.padding_idx, dtype=self.dtype.name)

    def __repr__(self):
        return (f"Seq2Seq({self.source_embedding.num_embeddings} -> {self.target_embedding.num_embeddings} tokens, "
                f"embedding_dim={self.source_embedding.embedding_dim}, hidden_size={self.hidden_size}, "
                f"num_layers={self.num_layers}, attention={self.attention_score!r}"
                f"{'' if self.source_vocabulary is None else ', ' + self.tokenizer + '-level'})")


def _vocabulary_and_size(name, value):
    """A Vocabulary (or its to_list()) -> (it, its size); a size -> (None, the size)."""
    if isinstance(value, (list, tuple)):
        value = text.Vocabulary.from_list(list(value))
    if isinstance(value, text.Vocabulary):
        if len(value) <= len(text.SPECIALS):
            raise ValueError(f"{name} must hold a token besides the specials {text.SPECIALS}, got none")
        return value, len(value)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be a numgru.text.Vocabulary, its to_list(), or a vocabulary size (int), "
                        f"got {type(value).__name__}")
    return None, validation.check_positive_int(name, value)
