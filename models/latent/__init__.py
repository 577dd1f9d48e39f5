"""Latent-space tools: meaningful directions (SeFa, GANSpace), image projection, and the w-row
layer groups.

Importing this package loads no torch; the modules that compute with a generator import it.
"""
