"""Layer outputs of prepared batches for redirection: a forward that stops at a layer, and the replay of
only the trained layers from their recorded input (:func:`record_span`)."""

from __future__ import annotations

import logging

from asru.core.layers import decoder_layers, layer_output

LOG = logging.getLogger("asru.steering")


class _Stop(Exception):
    pass


class LayerTap:
    """Captures decoder layer ``layer``'s output and stops the forward pass there."""

    def __init__(self, model, layer: int):
        self.block = decoder_layers(model)[layer]
        self.model = model
        self.out = None

    def __call__(self, _m, _i, output):
        self.out = layer_output(output)
        raise _Stop

    def run(self, enc):
        handle = self.block.register_forward_hook(self)
        try:
            self.model(**enc, use_cache=False)
        except _Stop:
            pass
        finally:
            handle.remove()
        out, self.out = self.out, None
        return out


class SpanReplay:
    """Runs only decoder layers ``first..last`` of a batch, from that batch's recorded input to layer ``first``.

    Layers below ``first`` are frozen during redirection, so their output (layer ``first``'s input, the
    vision tower's work included) is the same at every step: :meth:`record` runs the full forward once
    per batch, keeping each span layer's call arguments (masks, rotary embeddings) and the span's input;
    :meth:`run` then replays just the span. A model that changes the hidden state between layers (Qwen3-VL
    adds deepstack visual features after its first layers) would make the replay differ from the full
    forward: :meth:`record` checks the replay against the full forward and reports a mismatch, and the
    caller falls back to full forwards.
    """

    def __init__(self, model, first: int, last: int):
        self.layers = [decoder_layers(model)[i] for i in range(first, last + 1)]
        self.tap = LayerTap(model, last)
        self.calls: list = []

    def _pre(self, _m, args, kwargs):
        self.calls.append((args, kwargs))

    def record(self, enc) -> tuple[dict, object]:
        """Full forward once: ``(recorded span inputs, layer last's output)``."""
        self.calls = []
        handles = [lay.register_forward_pre_hook(self._pre, with_kwargs=True) for lay in self.layers]
        try:
            out = self.tap.run(enc)
        finally:
            for h in handles:
                h.remove()
        calls, self.calls = self.calls, []
        out = out.detach().clone()
        if len(calls) != len(self.layers):
            return None, out
        args, kwargs = calls[0]
        hidden = args[0] if args else kwargs["hidden_states"]
        return {"hidden": hidden.detach(), "calls": [(a[1:] if a else a, {k: v for k, v in kw.items() if k != "hidden_states"})
                                                     for a, kw in calls]}, out

    def run(self, rec):
        """Layer ``last``'s output, computed from the recorded span input through the span's current weights."""
        h = rec["hidden"]
        for lay, (args, kwargs) in zip(self.layers, rec["calls"]):
            h = layer_output(lay(h, *args, **kwargs))
        return h


class BatchTap:
    """Layer output of a prepared batch: replayed from its recorded span input, or a full forward."""

    def __init__(self, full: LayerTap, span: SpanReplay | None = None):
        self.full = full
        self.span = span

    def run(self, batch):
        if self.span is not None:
            return self.span.run(batch["span"])
        return self.full.run(batch["enc"])


def record_span(model, first: int, layer: int, batches: list, replay: bool = True) -> BatchTap:
    """Set each batch's ``frozen`` layer output and recorded span input; the tap to use while training.

    Falls back to full forwards (logged) when replaying the span does not reproduce the full forward, which
    is checked on the first text batch and the first image batch (what breaks a replay, such as visual
    features added between layers, breaks it for every batch of that modality); ``replay=False`` uses full
    forwards from the start.
    """
    import torch

    if not replay:
        full = LayerTap(model, layer)
        with torch.no_grad():
            for b in batches:
                b["frozen"] = full.run(b["enc"]).detach().clone()
        return BatchTap(full)
    span = SpanReplay(model, first, layer)
    checked: set[bool] = set()  # modalities (has an image) whose replay was compared with the full forward
    with torch.no_grad():
        for b in batches:
            rec, b["frozen"] = span.record(b["enc"])
            with_image = "pixel_values" in b["enc"]
            if replay and (rec is None or (with_image not in checked and
                                           not torch.allclose(span.run(rec), b["frozen"], rtol=1e-4, atol=1e-4))):
                LOG.info("redirection: replaying layers %d..%d alone does not reproduce the model's forward; "
                         "every step runs the full forward", first, layer)
                replay = False
            checked.add(with_image)
            b["span"] = rec
    if not replay:
        for b in batches:
            b.pop("span", None)
    return BatchTap(span.tap, span if replay else None)
