"""Decoders of formats libvips does not read, run on untrusted bytes outside the service."""
