"""tsne_dist: trustworthy t-SNE maps of large item catalogs."""

__version__ = "0.1.0"
