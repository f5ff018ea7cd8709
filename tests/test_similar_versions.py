"""`similar` and `playlist` compare within one fingerprint version: the seed's own (while a library is
re-analysed after a spec change, rows of two versions sit side by side and are never mixed in a distance)."""

import pytest

from tests.library_db import result, values_for
from trackprint.fingerprint import FINGERPRINT_VERSION
from trackprint.persister.store import Meta, Store
from trackprint.search import NothingToCompare, similar_to, smooth_playlist

OLD = FINGERPRINT_VERSION - 1  # a previous version this release still reads (KNOWN_VERSIONS)


@pytest.fixture
def half_reanalysed(tmp_path):
    """Twelve tracks: /lib/old0..5 still of the previous version, /lib/new0..5 re-analysed."""
    url = f"sqlite:///{tmp_path / 'lib.db'}"
    store = Store(url)
    try:
        store.migrate()
        paths = [(f"/lib/old{i}.flac", OLD) for i in range(6)] + [(f"/lib/new{i}.flac", FINGERPRINT_VERSION)
                                                                   for i in range(6)]
        messages = [(result(path, values_for(path), None, n + 1, version=version), Meta(n + 1))
                    for n, (path, version) in enumerate(paths)]
        assert store.apply(messages).persisted == 12
    finally:
        store.close()
    return url


def test_a_seed_is_compared_with_the_tracks_of_its_own_version(half_reanalysed):
    for seed, prefix in (("/lib/old0.flac", "/lib/old"), ("/lib/new0.flac", "/lib/new")):
        found = similar_to(half_reanalysed, [seed], 10)
        assert len(found.matches) == 5
        assert all(m.path.startswith(prefix) for m in found.matches), [m.path for m in found.matches]
        playlist = smooth_playlist(half_reanalysed, seed, 10)
        assert len(playlist) == 6 and all(m.path.startswith(prefix) for m in playlist)


def test_seeds_of_two_versions_are_refused_with_the_reason(half_reanalysed):
    with pytest.raises(NothingToCompare, match="versions .* not comparable"):
        similar_to(half_reanalysed, ["/lib/old0.flac", "/lib/new0.flac"], 5)


def test_the_first_track_of_a_new_version_says_it_has_nothing_to_compare_with_yet(tmp_path):
    """A re-analysis reaches some seed first: the seed is then the only track of its version, and `similar`
    says so (exit 1, "try again shortly") rather than an empty list that looks like an answer."""
    url = f"sqlite:///{tmp_path / 'lib.db'}"
    store = Store(url)
    try:
        store.migrate()
        paths = [(f"/lib/old{i}.flac", OLD) for i in range(4)] + [("/lib/first.flac", FINGERPRINT_VERSION)]
        store.apply([(result(path, values_for(path), None, n + 1, version=version), Meta(n + 1))
                     for n, (path, version) in enumerate(paths)])
    finally:
        store.close()
    with pytest.raises(NothingToCompare, match=f"no track but the seeds has fingerprint version {FINGERPRINT_VERSION}"):
        similar_to(url, ["/lib/first.flac"], 5)
    assert len(similar_to(url, ["/lib/old0.flac"], 5).matches) == 3
