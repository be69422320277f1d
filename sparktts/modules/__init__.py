"""BiCodec building blocks: one module per part (vocos backbone, quantisers, speaker encoder, wave generator)."""
