"""``trackprint eval-similarity``: does the fingerprint find tracks that belong together? (docs/evaluation.md)

A labelled corpus of real music (:mod:`.corpus`: Debian's game-music packages, label = package) is
described by trackprint's 25 numbers from the project's own engine (:mod:`.descriptors`, cached per
file, engine and fingerprint version) and by baselines computed in the same run on the same files
(:mod:`.baselines`: MFCC statistics with librosa, bliss-audio when installed). Every track is a query
once (leave-one-out); the retrieval scores (:mod:`.metrics`: mAP, 1-NN, 5-NN, bootstrap intervals over
the queries, paired differences) are computed for every distance variant of
:data:`trackprint.similarity.VARIANTS` and every baseline. :mod:`.tempo_agreement` compares
``tempo_bpm`` with Essentia's tempo estimators; :mod:`.codecs` re-encodes some tracks with ffmpeg and
measures codec identity (is a re-encoded copy nearest its own original?) and every dimension's codec
sensitivity; :mod:`.report` prints; :mod:`.runner` runs it all.
"""
