"""The general-purpose commands of ``sk-gmvae`` (``cluster``, ``predict``) and what every
command shares (``options``); the top-level parser is :mod:`sk_gmvae.cli`, the study's
commands are :mod:`sk_gmvae.study.cli`."""
