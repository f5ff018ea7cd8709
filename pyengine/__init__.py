"""The Python engine: one file in, 25 numbers (or a typed error) out.

The reference implementation of ``docs/fingerprint-spec.md`` and the fallback
when the Rust engine cannot run. Its parts, in the order a file meets them:

- ``sniff``: the container, by content (one ID3v2 / format parser);
- ``identity``: the audio-content id (tags excluded), next to sniff;
- ``decode``: libsndfile / FFmpeg streams of float32 blocks;
- ``features``: pure numpy, one function per dimension, grouped by the spec's families;
- ``engine``: ``analyze_file``: decode into the features, deadlines, truncation.

Which engine runs for a file is not decided here: see ``trackprint.analyzer.engines``.
"""
