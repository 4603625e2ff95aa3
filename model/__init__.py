"""Networks and the streaming engine: video autoencoder, block-causal DiT, KV cache, discriminator, kernels."""
